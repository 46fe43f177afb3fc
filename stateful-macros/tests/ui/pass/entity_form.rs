//! The entity form: keyed state, several handlers, a helper fn, routes, typed calls.
use stateful_runtime::prelude::*;

#[app]
mod bank {
    use stateful_runtime::prelude::*;

    #[derive(Default, Clone, Serialize, Deserialize)]
    pub struct Balance {
        cents: i64,
    }

    type Answer<T> = Result<T, Rejection>;

    #[lambda(key = u64, state = Balance)]
    impl Account {
        fn clamp(v: i64) -> i64 {
            v.max(0)
        }

        #[route(post, "/deposit/{key}/{amount}")]
        async fn deposit(ctx: &mut Ctx<Self>, amount: i64) -> Answer<i64> {
            let mut s = ctx.state_mut();
            s.cents += Self::clamp(amount);
            Ok(s.cents)
        }

        #[route(get, "/balance/{key}")]
        async fn balance(ctx: &Ctx<Self>) -> Answer<i64> {
            Ok(ctx.state().cents)
        }

        async fn transfer(ctx: &mut Ctx<Self>, to: u64, amount: i64) -> Answer<()> {
            ctx.call::<Account>(&to).deposit(amount).await?;
            ctx.state_mut().cents -= amount;
            Ok(())
        }
    }
}

fn main() {
    use stateful_runtime::__private::Lambda;
    let h = bank::Account::HANDLERS;
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].route, Some(("POST", "/deposit/{key}/{amount}")));
    assert_eq!(h[2].params, [("to", "u64"), ("amount", "i64")]);
    assert_eq!(h[1].output, "Answer<i64>");
    assert!(bank::GRAPH_DOT.contains("transfer → deposit(i64)"), "{}", bank::GRAPH_DOT);
    assert_eq!(bank::app().lambdas().len(), 1);
}
