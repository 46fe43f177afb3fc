use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = u64)]
    impl Customer {
        async fn add_points(ctx: &mut Ctx<Self>, points: u64) -> Result<(), Rejection> {
            *ctx.state_mut() += points;
            Ok(())
        }
    }

    #[lambda(key = String, state = u64)]
    impl Order {
        /// A read handler cannot send: a message is an effect of the request.
        async fn peek(ctx: &Ctx<Self>, customer: String) -> Result<u64, Rejection> {
            ctx.send::<Customer>(&customer).add_points(1);
            Ok(*ctx.state())
        }
    }
}

fn main() {}
