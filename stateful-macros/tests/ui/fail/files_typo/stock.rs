use stateful_runtime::prelude::*;

#[lambda(key = String, state = u32)]
impl Stock {
    async fn take(ctx: &mut Ctx<Self>, n: u32) -> Result<u32, Rejection> {
        *ctx.state_mut() -= n;
        Ok(*ctx.state())
    }
}
