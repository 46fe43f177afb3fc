//! The booking app's unit tests, on the in-process harness.
#![allow(missing_docs)]

use std::time::Duration;

use booking::booking::{Booking, Customer, Flight, HOLD, Seats, Status, Wallet};
use stateful_runtime::testing::{Fault, TestApp};

/// Flight F1 (10 seats at 100), customers ann (1000 credit) and bob (50).
fn app() -> TestApp {
    let t = TestApp::new(booking::booking::app());
    t.call::<Flight>("F1").open(10, 100).wait().expect("flight");
    t.call::<Customer>("ann").open(1000).wait().expect("ann");
    t.call::<Customer>("bob").open(50).wait().expect("bob");
    t
}

fn seats(t: &TestApp) -> Seats {
    t.call::<Flight>("F1").seats().wait().expect("seats")
}

fn wallet(t: &TestApp, who: &str) -> Wallet {
    t.call::<Customer>(who).wallet().wait().expect("wallet")
}

fn status(t: &TestApp, b: &str) -> Status {
    t.call::<Booking>(b).find().wait().expect("booking").status
}

#[test]
fn a_paid_booking_sells_the_seats_and_the_points_follow() {
    let t = app();
    let b = t.call::<Booking>("b1");
    assert_eq!(b.hold("F1".into(), "ann".into(), 3).wait(), Ok(300));
    t.call::<Booking>("b1").pay().wait().expect("pays");
    t.settle();
    assert_eq!(
        seats(&t),
        Seats {
            free: 7,
            held: 0,
            sold: 3,
            price: 100
        }
    );
    assert_eq!(
        wallet(&t, "ann"),
        Wallet {
            credit: 700,
            points: 30
        }
    );
    // The hold's timer fires later and finds the booking paid: nothing changes.
    t.advance(HOLD);
    assert_eq!(status(&t, "b1"), Status::Paid);
    assert_eq!(seats(&t).sold, 3);
}

#[test]
fn unpaid_seats_go_back_after_fifteen_minutes_and_not_before() {
    let t = app();
    t.call::<Booking>("b1")
        .hold("F1".into(), "ann".into(), 4)
        .wait()
        .expect("holds");
    t.advance(HOLD - Duration::from_secs(1));
    assert_eq!(seats(&t).held, 4, "still held");
    t.advance(Duration::from_secs(1));
    assert_eq!(status(&t, "b1"), Status::Released);
    assert_eq!((seats(&t).free, seats(&t).held), (10, 0));
    assert!(t.call::<Booking>("b1").pay().wait().is_err(), "too late");
}

#[test]
fn a_failed_payment_charges_nothing_and_the_seats_stay_held() {
    let t = app();
    t.call::<Booking>("b2")
        .hold("F1".into(), "bob".into(), 1)
        .wait()
        .expect("holds");
    let err = t.call::<Booking>("b2").pay().wait().expect_err("50 < 100");
    assert!(err.to_string().contains("not enough credit"), "{err}");
    t.settle();
    assert_eq!(
        wallet(&t, "bob"),
        Wallet {
            credit: 50,
            points: 0
        },
        "no points for a failed payment"
    );
    assert_eq!(seats(&t).held, 1);
    // A seat confirmation that fails rolls the charge back too.
    t.call::<Booking>("b3")
        .hold("F1".into(), "ann".into(), 2)
        .wait()
        .expect("holds");
    t.fail_next::<Flight>("confirm", Fault::Reject("the flight system is down".into()));
    assert!(t.call::<Booking>("b3").pay().wait().is_err());
    assert_eq!(wallet(&t, "ann").credit, 1000, "the charge was undone");
    t.call::<Booking>("b3").pay().wait().expect("pays on retry");
    assert_eq!(wallet(&t, "ann").credit, 800);
}

#[test]
fn seats_that_are_not_there_cannot_be_held() {
    let t = app();
    assert!(
        t.call::<Booking>("b1")
            .hold("F1".into(), "ann".into(), 11)
            .wait()
            .is_err()
    );
    assert_eq!(t.state::<Booking>("b1"), None, "nothing was created");
    assert!(
        t.call::<Booking>("b2")
            .hold("NOPE".into(), "ann".into(), 1)
            .wait()
            .is_err()
    );
    assert_eq!(seats(&t).free, 10);
}

#[test]
fn bookings_are_forgotten_thirty_days_after_their_last_change() {
    let t = app();
    t.call::<Booking>("b1")
        .hold("F1".into(), "ann".into(), 1)
        .wait()
        .expect("holds");
    t.call::<Booking>("b1").pay().wait().expect("pays");
    t.advance(Duration::from_secs(29 * 86_400));
    assert_eq!(status(&t, "b1"), Status::Paid);
    t.advance(Duration::from_secs(2 * 86_400));
    assert!(t.call::<Booking>("b1").find().wait().is_err(), "expired");
}
