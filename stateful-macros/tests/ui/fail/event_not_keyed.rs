use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[derive(Serialize, Deserialize)]
    pub struct PaymentRequested {
        user_id: String,
        amount: i64,
    }

    #[derive(Default, Clone, Serialize, Deserialize)]
    pub struct Wallet {
        credit: i64,
    }

    #[lambda]
    async fn payment(ctx: &mut Ctx<Wallet>, req: PaymentRequested) -> Result<i64, Rejection> {
        Ok(ctx.state().credit - req.amount)
    }
}

fn main() {}
