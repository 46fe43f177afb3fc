//! `join!` of calls is an AND-node of kind join.
use stateful_runtime::prelude::*;

#[app]
mod prices {
    use stateful_runtime::prelude::*;

    #[lambda(key = String, state = i64)]
    impl Item {
        async fn price(ctx: &mut Ctx<Self>) -> Result<i64, Rejection> {
            Ok(*ctx.state())
        }
    }

    #[lambda(key = String)]
    impl Basket {
        async fn total(ctx: &mut Ctx<Self>, a: String, b: String) -> Result<i64, Rejection> {
            let (x, y) = join!(ctx.call::<Item>(&a).price(), ctx.call::<Item>(&b).price());
            Ok(x? + y?)
        }
    }
}

fn main() {
    assert!(prices::GRAPH_JSON.contains("\"kind\": \"join\""), "{}", prices::GRAPH_JSON);
    assert_eq!(prices::GRAPH_JSON.matches("\"edge\": \"call\"").count(), 2);
    assert!(prices::GRAPH_DOT.contains("total → price() ×2"), "{}", prices::GRAPH_DOT);
}
