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

stateful_runtime::app_modules! {
    /// The booking app: one file per lambda (`src/booking/*.rs`), named by the `mod` lines.
    pub mod booking {
        mod flight;
        mod customer;
        mod reservation;

        pub use customer::{Customer, Wallet};
        pub use flight::{Flight, Seats};
        pub use reservation::{Booking, HOLD, Reservation, Status};
    }
}
