//! Customers: the credit that pays for bookings, and the loyalty points they earn.

use stateful_runtime::prelude::*;

/// A customer's wallet and loyalty points.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wallet {
    /// Money left.
    pub credit: i64,
    /// Loyalty points earned.
    pub points: u64,
}

#[lambda(key = String, state = Wallet, missing = not_found)]
impl Customer {
    #[create]
    #[route(post, "/customers/{key}/{credit}")]
    async fn open(ctx: &mut Ctx<Self>, credit: i64) -> Result<(), Rejection> {
        if credit < 0 {
            return Err(Rejection::new("credit is not negative"));
        }
        ctx.set_state(Wallet { credit, points: 0 });
        Ok(())
    }

    /// "Subtract, then check" is safe: a rejection takes the subtraction back.
    async fn charge(ctx: &mut Ctx<Self>, amount: i64) -> Result<(), Rejection> {
        let mut w = ctx.state_mut();
        w.credit -= amount;
        if w.credit < 0 {
            return Err(Rejection::new("not enough credit"));
        }
        Ok(())
    }

    /// Reached by messages after a payment.
    async fn add_loyalty(ctx: &mut Ctx<Self>, points: u64) -> Result<(), Rejection> {
        ctx.state_mut().points += points;
        Ok(())
    }

    #[route(get, "/customers/{key}")]
    async fn wallet(ctx: &Ctx<Self>) -> Result<Wallet, Rejection> {
        Ok(ctx.state().clone())
    }
}
