use stateful_runtime::prelude::*;

#[lambda(key = String, state = u32)]
impl Book {
    #[route(post, "/books/{key}/copies/{count}")]
    async fn add(ctx: &mut Ctx<Self>, n: u32) -> Result<(), Rejection> {
        *ctx.state_mut() += n;
        Ok(())
    }

    async fn lend(ctx: &mut Ctx<Self>) -> Result<(), Rejection> {
        *ctx.state_mut() -= 1;
        Ok(())
    }
}
