//! A transaction inside a transaction (a savepoint).
use stateful_runtime::prelude::*;

#[app]
mod nested {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Counter {
        async fn bump(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            *ctx.state_mut() += 1;
            Ok(*ctx.state())
        }

        async fn twice(ctx: &mut Ctx<Self>, other: String) -> Result<bool, Rejection> {
            transaction! {
                ctx.call::<Counter>(&other).bump().await?;
                let inner = transaction! {
                    ctx.call::<Counter>(&other).bump().await?;
                    Err(Rejection::new("undo only the inner bump"))
                }
                .on_failure_return(Ok(false))?;
                Ok(inner)
            }
            .on_failure_return(Ok(false))
        }
    }
}

fn main() {
    let json = nested::GRAPH_JSON;
    assert_eq!(json.matches("\"kind\": \"transaction\"").count(), 2, "{json}");
    assert_eq!(json.matches("\"edge\": \"enter\"").count(), 2);
}
