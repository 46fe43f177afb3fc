//! An app in files: `files_shop/stock.rs` and `files_shop/order.rs`, named by `mod` lines; the
//! graph sees the call and the transaction in `order.rs`, and the app runs.
stateful_runtime::app_modules! {
    /// The app.
    pub mod files_shop {
        mod order;
        mod stock;

        pub use order::Order;
        pub use stock::{Item, Stock};
    }
}

fn main() {
    let g = stateful_core::ir::AppGraph::from_json(files_shop::GRAPH_JSON).expect("IR parses");
    let names: Vec<String> = g.lambdas().map(|l| l.name.clone()).collect();
    assert_eq!(names, ["Order", "Stock"]);
    assert!(files_shop::GRAPH_DOT.contains("checkout → take(u32)"), "{}", files_shop::GRAPH_DOT);
    assert!(files_shop::GRAPH_DOT.contains("transaction"), "{}", files_shop::GRAPH_DOT);
    let t = stateful_runtime::testing::TestApp::new(files_shop::app());
    t.call::<files_shop::Stock>("pen").add(3).wait().expect("add");
    let got = t.call::<files_shop::Order>(1u32).checkout("pen".into(), 2).wait();
    assert_eq!(got.expect("checkout"), 1);
    let left = t.state::<files_shop::Stock>("pen");
    assert_eq!(left.map(|s| s.count), Some(1));
}
