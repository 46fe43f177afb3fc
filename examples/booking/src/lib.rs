//! Flight bookings, the app a new user wrote first (issue 14's findings are its tests):
//! seats are held for 15 minutes by a timer, paid for atomically with the customer's credit,
//! rewarded with loyalty points by a message after commit, and bookings expire after 30 days.
//!
//! ```text
//! POST /flights/{key}/{seats}/{price}          open a flight
//! POST /customers/{key}/{credit}               open a customer
//! POST /bookings/{key}/hold/{flight}/{customer}/{seats}
//!        holds seats; a timer releases them in 15 minutes unless paid
//! POST /bookings/{key}/pay                     charge + confirm in one transaction, then
//!                                              loyalty points by a message
//! GET  /flights/{key}  /customers/{key}  /bookings/{key}
//! ```

/// The booking app.
#[stateful_runtime::app]
pub mod booking {
    use std::time::Duration;

    /// How long unpaid seats stay held.
    pub const HOLD: Duration = Duration::from_secs(15 * 60);

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
}
