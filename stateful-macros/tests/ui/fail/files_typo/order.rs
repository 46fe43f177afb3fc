use stateful_runtime::prelude::*;

use super::stock::Stock;

#[lambda(key = u32)]
impl Order {
    #[public]
    async fn checkout(ctx: &mut Ctx<Self>, item: String) -> Result<u32, Rejection> {
        ctx.call::<Stock>(&item).take_one().await
    }
}
