use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Stock {
        /// A read handler (`&Ctx`) cannot write.
        async fn peek(ctx: &Ctx<Self>) -> Result<i64, Rejection> {
            *ctx.state_mut() += 1;
            Ok(*ctx.state())
        }
    }
}

fn main() {}
