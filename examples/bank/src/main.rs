//! The README's example: accounts with an atomic transfer.

/// Bank accounts.
#[stateful_runtime::app(main)]
mod bank {
    use stateful_runtime::prelude::*;

    #[derive(Default, Clone, Serialize, Deserialize)]
    pub struct Account {
        balance: i64,
    }

    #[lambda(key = String, state = Account)]
    impl Accounts {
        #[route(post, "/deposit/{key}/{amount}")]
        async fn deposit(ctx: &mut Ctx<Self>, amount: i64) -> Result<i64, Rejection> {
            ctx.state_mut().balance += amount;
            Ok(ctx.state().balance)
        }

        async fn withdraw(ctx: &mut Ctx<Self>, amount: i64) -> Result<i64, Rejection> {
            if ctx.state().balance < amount {
                return Err(Rejection::new("insufficient funds"));
            }
            ctx.state_mut().balance -= amount;
            Ok(ctx.state().balance)
        }

        /// Both legs or neither: the paper's Listing 1 shape.
        #[route(post, "/transfer/{key}/{to}/{amount}")]
        async fn transfer(ctx: &mut Ctx<Self>, to: String, amount: i64) -> Result<(), Rejection> {
            let me = ctx.key().clone();
            transaction! {
                ctx.call::<Accounts>(&me).withdraw(amount).await?;
                ctx.call::<Accounts>(&to).deposit(amount).await?;
                Ok(())
            }
            .on_failure_return(Err(Rejection::new("transfer rolled back")))
        }
    }
}
