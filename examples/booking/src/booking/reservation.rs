//! Bookings: hold seats (released by a timer unless paid), pay in one transaction, reward
//! loyalty by a message after commit; forgotten 30 days after their last change.

use std::time::Duration;

use stateful_runtime::prelude::*;

use super::{Customer, Flight};

/// How long unpaid seats stay held.
pub const HOLD: Duration = Duration::from_secs(15 * 60);

/// Where a booking is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Seats held, not paid.
    #[default]
    Held,
    /// Paid: the seats are sold.
    Paid,
    /// Not paid in time: the seats went back.
    Released,
}

/// One booking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The flight.
    pub flight: String,
    /// The customer.
    pub customer: String,
    /// Seats held or sold.
    pub seats: u32,
    /// What they cost.
    pub cost: i64,
    /// Where the booking is.
    pub status: Status,
}

/// Bookings are forgotten 30 days after their last change.
#[lambda(key = String, state = Reservation, missing = not_found, ttl = "30d")]
impl Booking {
    /// Holds seats; a timer releases them after [`HOLD`] unless the booking is paid.
    #[create]
    #[route(post, "/bookings/{key}/hold/{flight}/{customer}/{seats}")]
    async fn hold(
        ctx: &mut Ctx<Self>,
        flight: String,
        customer: String,
        seats: u32,
    ) -> Result<i64, Rejection> {
        if ctx.exists() {
            return Err(Rejection::new("this booking exists already"));
        }
        let cost = ctx.call::<Flight>(&flight).hold(seats).await?;
        ctx.set_state(Reservation {
            flight,
            customer,
            seats,
            cost,
            status: Status::Held,
        });
        let me = ctx.key().clone();
        ctx.send_after::<Booking>(HOLD, &me).hold_expired();
        Ok(cost)
    }

    /// Charges the customer and sells the seats, both or neither; then the loyalty
    /// points follow by a message (they need not be atomic with the payment, only sure).
    #[route(post, "/bookings/{key}/pay")]
    async fn pay(ctx: &mut Ctx<Self>) -> Result<(), Rejection> {
        let b = ctx.state().clone();
        if b.status != Status::Held {
            return Err(Rejection::new("this booking is not waiting for payment"));
        }
        let paid: Result<(), Rejection> = transaction! {
            ctx.call::<Customer>(&b.customer).charge(b.cost).await?;
            ctx.call::<Flight>(&b.flight).confirm(b.seats).await?;
            ctx.state_mut().status = Status::Paid;
            Ok(())
        }
        .on_failure(|e| {
            Err(Rejection::new(format!(
                "payment failed, the seats stay held: {e}"
            )))
        });
        paid?;
        let points = u64::try_from(b.cost / 10).unwrap_or(0);
        ctx.send::<Customer>(&b.customer).add_loyalty(points);
        Ok(())
    }

    /// The hold's timer: unpaid seats go back to the flight.
    async fn hold_expired(ctx: &mut Ctx<Self>) -> Result<(), Rejection> {
        let b = ctx.state().clone();
        if b.status == Status::Held {
            ctx.call::<Flight>(&b.flight).release(b.seats).await?;
            ctx.state_mut().status = Status::Released;
        }
        Ok(())
    }

    #[route(get, "/bookings/{key}")]
    async fn find(ctx: &Ctx<Self>) -> Result<Reservation, Rejection> {
        Ok(ctx.state().clone())
    }
}
