use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Stock {
        async fn get(ctx: &mut Ctx<Self>) -> i64 {
            *ctx.state()
        }
    }
}

fn main() {}
