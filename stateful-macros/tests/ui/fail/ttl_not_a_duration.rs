use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = u32, ttl = "thirty days")]
    impl Cart {
        async fn items(ctx: &Ctx<Self>) -> Result<u32, Rejection> {
            Ok(*ctx.state())
        }
    }
}

fn main() {}
