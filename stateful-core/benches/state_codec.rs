//! The cost of the state encoding: a stored state value (MessagePack with field names, the
//! format that lets a state type change) against postcard (what values were before), for
//! shapes like the shop's. Prints bytes per value and ns per encode and decode (median of 7
//! rounds).
//!
//! ```text
//! cargo bench -p stateful-core --bench state_codec
//! ```
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stateful_core::records::state::{decode_state, encode_state};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Stock {
    stock: i64,
    price: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Order {
    user_id: String,
    items: Vec<(String, i64)>,
    total_cost: i64,
    paid: bool,
}

const N: u32 = 200_000;

fn ns_per_op(mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(N)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[3]
}

fn compare<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, v: &T) {
    let mp = encode_state(1, v).expect("encodes");
    let pc = postcard::to_stdvec(v).expect("encodes");
    assert_eq!(&decode_state::<T>(&mp).expect("decodes"), v);
    let mp_enc = ns_per_op(|| drop(black_box(encode_state(1, black_box(v)))));
    let mp_dec = ns_per_op(|| drop(black_box(decode_state::<T>(black_box(&mp)))));
    let pc_enc = ns_per_op(|| drop(black_box(postcard::to_stdvec(black_box(v)))));
    let pc_dec = ns_per_op(|| drop(black_box(postcard::from_bytes::<T>(black_box(&pc)))));
    println!(
        "{name:<6} state value {:>3} B  encode {mp_enc:>6.0} ns  decode {mp_dec:>6.0} ns  | postcard {:>3} B  encode {pc_enc:>5.0} ns  decode {pc_dec:>5.0} ns",
        mp.len(),
        pc.len()
    );
}

fn main() {
    compare(
        "stock",
        &Stock {
            stock: 1_000_000,
            price: 12,
        },
    );
    compare(
        "order",
        &Order {
            user_id: "user-4711".into(),
            items: vec![("item-17".into(), 1), ("item-9000".into(), 2)],
            total_cost: 40,
            paid: false,
        },
    );
}
