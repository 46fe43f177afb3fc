use stateful_runtime::prelude::*;

use super::book::Book;

#[lambda(key = String, state = bool)]
impl Loan {
    #[public]
    async fn open(ctx: &mut Ctx<Self>, book: String) -> Result<(), Rejection> {
        transaction! {
            ctx.call::<Book>(&book).lend().await?;
            ctx.set_state(true);
            Ok(())
        }
    }
}
