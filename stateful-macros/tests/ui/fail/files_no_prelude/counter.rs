#[lambda(key = u32, state = u32)]
impl Counter {
    #[public]
    async fn add(ctx: &mut Ctx<Self>, n: u32) -> Result<(), Rejection> {
        *ctx.state_mut() += n;
        Ok(())
    }
}
