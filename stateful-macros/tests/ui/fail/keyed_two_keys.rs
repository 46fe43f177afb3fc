use stateful_runtime::prelude::*;

#[derive(Keyed, Serialize, Deserialize)]
pub struct PaymentRequested {
    #[key]
    user_id: String,
    #[key]
    order_id: String,
    amount: i64,
}

fn main() {}
