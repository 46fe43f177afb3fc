//! Cycles: A calls B, B calls A.
use stateful_runtime::prelude::*;

#[app]
mod pingpong {
    use stateful_runtime::prelude::*;

    #[lambda(key = u32, state = u32)]
    impl Ping {
        async fn ping(ctx: &mut Ctx<Self>, n: u32) -> Result<u32, Rejection> {
            if n == 0 {
                return Ok(*ctx.state());
            }
            let k = *ctx.key();
            ctx.call::<Pong>(&k).pong(n - 1).await
        }
    }

    #[lambda(key = u32)]
    impl Pong {
        async fn pong(ctx: &mut Ctx<Self>, n: u32) -> Result<u32, Rejection> {
            let k = *ctx.key();
            ctx.call::<Ping>(&k).ping(n).await
        }
    }
}

fn main() {
    let g = stateful_core::ir::AppGraph::from_json(pingpong::GRAPH_JSON).expect("IR parses");
    assert!(g.has_call_cycle(), "Ping → Pong → Ping");
    assert!(g.validate().is_empty());
}
