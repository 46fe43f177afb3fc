use stateful_runtime::prelude::*;

use super::Stock;

#[lambda(key = u32, state = u32)]
impl Order {
    #[public]
    async fn checkout(ctx: &mut Ctx<Self>, item: String, n: u32) -> Result<u32, Rejection> {
        let done: Result<(), Rejection> = transaction! {
            ctx.call::<Stock>(&item).take(n).await?;
            *ctx.state_mut() += 1;
            Ok(())
        }
        .on_failure_return(Err(Rejection::new("out of stock")));
        done?;
        Ok(*ctx.state())
    }
}
