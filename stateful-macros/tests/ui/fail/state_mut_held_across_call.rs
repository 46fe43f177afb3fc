use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Stock {
        async fn bump(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            *ctx.state_mut() += 1;
            Ok(*ctx.state())
        }

        /// A write guard held across a call: a compile error, not a panic at run time.
        async fn bump_both(ctx: &mut Ctx<Self>, other: String) -> Result<i64, Rejection> {
            let mut s = ctx.state_mut();
            *s += 1;
            ctx.call::<Stock>(&other).bump().await?;
            *s += 1;
            Ok(*s)
        }
    }
}

fn main() {}
