use stateful_runtime::prelude::*;

#[derive(Keyed, Serialize, Deserialize)]
pub struct PaymentRequested {
    user_id: String,
    amount: i64,
}

fn main() {}
