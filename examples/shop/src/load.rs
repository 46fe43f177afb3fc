//! The shop's request mixes for the console's load generator (`GET /`, "Start load"): the
//! loadgen binary's mixes, run in process.

use serde_json::json;
use stateful_runtime::mix::SplitMix;
use stateful_runtime::{LoadMix, LoadRequest};

/// Items and users the mixes prepare.
const ITEMS: u64 = 1_000;
/// See [`ITEMS`].
const USERS: u64 = 1_000;
/// Items the `hot` mix concentrates on.
const HOT: u64 = 4;

fn setup() -> Vec<LoadRequest> {
    let items = (0..ITEMS)
        .map(|i| LoadRequest::new("Stock", i.to_string(), "init", json!([1_000_000_000i64, 1])));
    let users = (0..USERS).map(|u| {
        LoadRequest::new(
            "Payment",
            u.to_string(),
            "init",
            json!([1_000_000_000_000i64]),
        )
    });
    items.chain(users).collect()
}

/// An order of two items from `pick`, then its checkout (the paper's Listing 1).
fn checkout(rng: &mut SplitMix, pick: impl Fn(&mut SplitMix) -> u64) -> Vec<LoadRequest> {
    let order = format!("lg-{:016x}", rng.next_u64());
    let user = rng.below(USERS).to_string();
    let (a, b) = (pick(rng), pick(rng));
    let items = json!([[a.to_string(), 1], [b.to_string(), 1]]);
    vec![
        LoadRequest::new("Order", order.clone(), "init", json!([user, items, 2])),
        LoadRequest::new("Order", order, "checkout", json!([])),
    ]
}

/// The shop's mixes: `checkout`, `hot`, `counter`, `reads`.
pub fn mixes() -> Vec<LoadMix> {
    vec![
        LoadMix::new(
            "checkout",
            "create an order of two items, check it out",
            |rng| checkout(rng, |r| r.below(ITEMS)),
        )
        .setup(setup),
        LoadMix::new(
            "hot",
            "checkouts whose items are mostly 4 hot ones",
            |rng| {
                checkout(rng, |r| {
                    if r.below(10) < 9 {
                        r.below(HOT)
                    } else {
                        r.below(ITEMS)
                    }
                })
            },
        )
        .setup(setup),
        LoadMix::new("counter", "add 1 to a random item's stock", |rng| {
            let item = rng.below(ITEMS).to_string();
            vec![LoadRequest::new("Stock", item, "add", json!([1]))]
        })
        .setup(setup),
        LoadMix::new("reads", "find a random item and user", |rng| {
            vec![
                LoadRequest::new("Stock", rng.below(ITEMS).to_string(), "find", json!([])),
                LoadRequest::new("Payment", rng.below(USERS).to_string(), "find", json!([])),
            ]
        })
        .setup(setup),
    ]
}
