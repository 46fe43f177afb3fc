use stateful_runtime::prelude::*;

pub struct Stock;

#[lambda(key = String, state = i64)]
impl Stock {
    async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
        Ok(*ctx.state())
    }
}

fn main() {}
