//! The checkout transaction as unit tests on the in-process harness (`TestApp`): typed calls,
//! inspection, and a callee made to reject or panic.
#![allow(missing_docs)]

use shop::shop::{ItemView, Order, Payment, ShopError, Stock};
use stateful_runtime::testing::{Fault, TestApp};

/// Two items (apple: 5 at 3, pear: 1 at 4), a user with 20 credit, and order o1 for one of
/// each (cost 7).
fn shop_with_one_order() -> TestApp {
    let t = TestApp::new(shop::shop::app());
    t.call::<Stock>("apple").init(5, 3).wait().expect("apple");
    t.call::<Stock>("pear").init(1, 4).wait().expect("pear");
    t.call::<Payment>("u1").init(20).wait().expect("user");
    let items = vec![("apple".to_owned(), 1), ("pear".to_owned(), 1)];
    t.call::<Order>("o1")
        .init("u1".into(), items, 7)
        .wait()
        .expect("order");
    t
}

fn stock(t: &TestApp, item: &str) -> i64 {
    let v: ItemView = t.call::<Stock>(item).find().wait().expect("item");
    v.stock
}

fn credit(t: &TestApp) -> i64 {
    t.call::<Payment>("u1").find().wait().expect("user").credit
}

#[test]
fn a_checkout_takes_the_stock_and_the_credit_once() {
    let t = shop_with_one_order();
    t.call::<Order>("o1").checkout().wait().expect("checks out");
    assert_eq!(
        (stock(&t, "apple"), stock(&t, "pear"), credit(&t)),
        (4, 0, 13)
    );
    let again = t.call::<Order>("o1").checkout().wait();
    assert!(matches!(again, Err(ShopError::AlreadyPaid(_))), "{again:?}");
    assert_eq!(credit(&t), 13);
    assert!(t.call::<Order>("o1").find().wait().expect("order").paid);
}

#[test]
fn an_item_out_of_stock_fails_the_checkout_and_changes_nothing() {
    let t = shop_with_one_order();
    t.call::<Stock>("pear")
        .subtract(1)
        .wait()
        .expect("sold elsewhere");
    let r = t.call::<Order>("o1").checkout().wait();
    assert!(matches!(r, Err(ShopError::CheckoutFailed(_))), "{r:?}");
    assert_eq!(
        (stock(&t, "apple"), credit(&t)),
        (5, 20),
        "the apple is back"
    );
    assert!(!t.call::<Order>("o1").find().wait().expect("order").paid);
}

#[test]
fn a_payment_outage_rolls_the_stock_back() {
    let t = shop_with_one_order();
    t.fail_next::<Payment>("pay", Fault::Reject("the bank is down".into()));
    let r = t.call::<Order>("o1").checkout().wait();
    assert!(matches!(r, Err(ShopError::CheckoutFailed(_))), "{r:?}");
    assert_eq!(
        (stock(&t, "apple"), stock(&t, "pear"), credit(&t)),
        (5, 1, 20)
    );
    // The outage was for one call: the retry goes through.
    t.call::<Order>("o1").checkout().wait().expect("checks out");
    assert_eq!(credit(&t), 13);
}

#[test]
fn a_panicking_callee_fails_the_whole_request() {
    let t = shop_with_one_order();
    t.fail_next::<Stock>("subtract", Fault::Panic("a bug in subtract".into()));
    let r = t.call::<Order>("o1").checkout().wait();
    match r {
        Err(ShopError::Call(e)) => assert!(e.to_string().contains("panicked"), "{e}"),
        other => panic!("expected the panic as a call error, got {other:?}"),
    }
    assert_eq!(
        (stock(&t, "apple"), stock(&t, "pear"), credit(&t)),
        (5, 1, 20)
    );
}
