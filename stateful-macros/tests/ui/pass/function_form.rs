//! The paper's Listing 1 in the function form: OrderInitiated → CreateOrder, which invokes
//! OrderPayment inside a transaction and records the order in its own state.
use stateful_runtime::prelude::*;

#[app]
mod shop {
    use stateful_runtime::prelude::*;

    #[derive(Keyed, Serialize, Deserialize)]
    pub struct OrderInitiated {
        #[key]
        pub user_id: String,
        pub items: Vec<String>,
        pub total: i64,
    }

    #[derive(Keyed, Serialize, Deserialize)]
    pub struct PaymentRequested {
        #[key]
        pub user_id: String,
        pub amount: i64,
    }

    #[derive(Serialize, Deserialize)]
    pub struct PaymentApproved {
        pub remaining: i64,
    }

    #[derive(Default, Clone, Serialize, Deserialize)]
    pub struct Wallet {
        credit: i64,
    }

    #[derive(Default, Clone, Serialize, Deserialize)]
    pub struct Orders {
        placed: Vec<Vec<String>>,
    }

    #[lambda(name = OrderPayment)]
    async fn payment(
        ctx: &mut Ctx<Wallet>,
        req: PaymentRequested,
    ) -> Result<PaymentApproved, Rejection> {
        let mut w = ctx.state_mut();
        if w.credit < req.amount {
            return Err(Rejection::new("not enough credit"));
        }
        w.credit -= req.amount;
        Ok(PaymentApproved { remaining: w.credit })
    }

    #[lambda]
    async fn create_order(ctx: &mut Ctx<Orders>, ev: OrderInitiated) -> Result<bool, Rejection> {
        transaction! {
            let paid = ctx
                .invoke::<OrderPayment>(PaymentRequested {
                    user_id: ev.user_id.clone(),
                    amount: ev.total,
                })
                .await?;
            ctx.state_mut().placed.push(ev.items.clone());
            Ok(paid.remaining >= 0)
        }
        .on_failure_return(Ok(false))
    }
}

fn main() {
    use stateful_runtime::__private::{EventLambda, Lambda};
    fn event_of<L: EventLambda<Event = E>, E>() {}
    event_of::<shop::CreateOrder, shop::OrderInitiated>();
    assert_eq!(<shop::OrderPayment as Lambda>::NAME, "OrderPayment");
    assert_eq!(<shop::CreateOrder as Lambda>::HANDLERS[0].name, "create_order");
    assert!(shop::GRAPH_DOT.contains("diamond"), "{}", shop::GRAPH_DOT);
    assert!(shop::GRAPH_JSON.contains("\"in_transaction\": true"));
    assert!(shop::GRAPH_JSON.contains("\"form\": \"function\""));
}
