//! Flights: seats that are free, held by unpaid bookings, or sold.

use stateful_runtime::prelude::*;

/// A flight's seats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seats {
    /// Seats nobody holds.
    pub free: u32,
    /// Seats held by unpaid bookings.
    pub held: u32,
    /// Seats paid for.
    pub sold: u32,
    /// Price of one seat.
    pub price: i64,
}

/// A flight that was never opened answers 404.
#[lambda(key = String, state = Seats, missing = not_found)]
impl Flight {
    #[create]
    #[route(post, "/flights/{key}/{seats}/{price}")]
    async fn open(ctx: &mut Ctx<Self>, seats: u32, price: i64) -> Result<(), Rejection> {
        if price < 0 {
            return Err(Rejection::new("a price is not negative"));
        }
        ctx.set_state(Seats {
            free: seats,
            price,
            ..Seats::default()
        });
        Ok(())
    }

    /// Holds `n` seats; the cost of them.
    async fn hold(ctx: &mut Ctx<Self>, n: u32) -> Result<i64, Rejection> {
        let mut s = ctx.state_mut();
        s.free = s
            .free
            .checked_sub(n)
            .ok_or_else(|| Rejection::new("not enough free seats"))?;
        s.held += n;
        i64::from(n)
            .checked_mul(s.price)
            .ok_or_else(|| Rejection::new("the cost overflows"))
    }

    /// Held seats become sold.
    async fn confirm(ctx: &mut Ctx<Self>, n: u32) -> Result<(), Rejection> {
        let mut s = ctx.state_mut();
        s.held = s
            .held
            .checked_sub(n)
            .ok_or_else(|| Rejection::new("no such hold"))?;
        s.sold += n;
        Ok(())
    }

    /// Held seats become free again.
    async fn release(ctx: &mut Ctx<Self>, n: u32) -> Result<(), Rejection> {
        let mut s = ctx.state_mut();
        s.held = s
            .held
            .checked_sub(n)
            .ok_or_else(|| Rejection::new("no such hold"))?;
        s.free += n;
        Ok(())
    }

    #[route(get, "/flights/{key}")]
    async fn seats(ctx: &Ctx<Self>) -> Result<Seats, Rejection> {
        Ok(ctx.state().clone())
    }
}
