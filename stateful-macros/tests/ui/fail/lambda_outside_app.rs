//! A lambda that no app declares: one error, naming what to do.
use stateful_runtime::prelude::*;

#[lambda(key = String, state = i64)]
impl Stock {
    async fn get(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
        Ok(*ctx.state())
    }
}

fn main() {}
