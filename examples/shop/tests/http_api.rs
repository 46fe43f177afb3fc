//! End-to-end tests of the shop's REST API against the real binary: every route's happy path
//! with its exact JSON shape, the batch-initialisation routes, every error path of the shop
//! (its `ShopError` answers, and that a failed request changed nothing) and the all-or-nothing
//! checkout. The framework's own HTTP contract (`/invoke`, `/state`, `/metrics`, `/graph`,
//! statuses, idempotency keys) is tested on a fixture app in `tests/tests/http_contract.rs`.

use serde_json::json;
use stateful_tests::{Client, Server, TestDir};

const SHOP: &str = env!("CARGO_BIN_EXE_shop");

/// A service and the directory it lives in (kept alive as long as the service).
fn shop() -> (TestDir, Server) {
    let mut dir = TestDir::new(SHOP);
    let shop = dir.start();
    (dir, shop)
}

/// The shop's routes as calls that must succeed.
trait Shop {
    /// A user's credit, read through the API.
    fn credit(&self, user: &str) -> i64;
    /// An item's stock, read through the API.
    fn stock(&self, item: &str) -> i64;
    /// Creates a user with `credit`, returning its id.
    fn user(&self, credit: i64) -> String;
    /// Creates an item with `stock` units at `price`, returning its id.
    fn item(&self, stock: i64, price: i64) -> String;
    /// Creates an order of `user` with `items` (id, quantity), returning its id.
    fn order(&self, user: &str, items: &[(&str, i64)]) -> String;
}

impl Shop for Client {
    fn credit(&self, user: &str) -> i64 {
        self.get(&format!("/payment/find_user/{user}")).ok()["credit"]
            .as_i64()
            .expect("credit is a number")
    }

    fn stock(&self, item: &str) -> i64 {
        self.get(&format!("/stock/find/{item}")).ok()["stock"]
            .as_i64()
            .expect("stock is a number")
    }

    fn user(&self, credit: i64) -> String {
        let id = self.post("/payment/create_user").ok()["user_id"]
            .as_str()
            .expect("user_id")
            .to_owned();
        if credit != 0 {
            self.post(&format!("/payment/add_funds/{id}/{credit}")).ok();
        }
        id
    }

    fn item(&self, stock: i64, price: i64) -> String {
        let id = self.post(&format!("/stock/item/create/{price}")).ok()["item_id"]
            .as_str()
            .expect("item_id")
            .to_owned();
        if stock != 0 {
            self.post(&format!("/stock/add/{id}/{stock}")).ok();
        }
        id
    }

    fn order(&self, user: &str, items: &[(&str, i64)]) -> String {
        let id = self.post(&format!("/orders/create/{user}")).ok()["order_id"]
            .as_str()
            .expect("order_id")
            .to_owned();
        for (item, qty) in items {
            self.post(&format!("/orders/addItem/{id}/{item}/{qty}"))
                .ok();
        }
        id
    }
}

#[test]
fn payment_routes_happy_path() {
    let (_dir, s) = shop();
    let created = s.post("/payment/create_user").ok();
    let id = created["user_id"].as_str().expect("user_id").to_owned();
    assert_eq!(created, json!({ "user_id": id }));
    assert_eq!(
        s.get(&format!("/payment/find_user/{id}")).ok(),
        json!({ "user_id": id, "credit": 0 })
    );
    // Every new user gets a fresh id.
    let other = s.post("/payment/create_user").ok();
    assert_ne!(other["user_id"], json!(id));

    assert_eq!(
        s.post(&format!("/payment/add_funds/{id}/50")).ok(),
        json!(null)
    );
    assert_eq!(s.credit(&id), 50);
    assert_eq!(s.post(&format!("/payment/pay/{id}/20")).ok(), json!(null));
    assert_eq!(s.credit(&id), 30);
    // Paying the whole credit is allowed: it may reach zero.
    s.post(&format!("/payment/pay/{id}/30")).ok();
    assert_eq!(s.credit(&id), 0);

    let batch = s.post("/payment/batch_init/3/100").ok();
    assert_eq!(batch["n"], json!(3));
    assert!(batch["msg"].as_str().is_some_and(|m| m.contains("Payment")));
    for u in ["0", "1", "2"] {
        assert_eq!(
            s.get(&format!("/payment/find_user/{u}")).ok(),
            json!({ "user_id": u, "credit": 100 })
        );
    }
    s.get("/payment/find_user/3").err(404);
    // The request log names the bulk load and how many instances it set.
    let log = s.get("/debug/log?lambda=Payment").ok();
    let load = log
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["handler"] == "load")
        .unwrap_or_else(|| panic!("a load in {log}"))
        .clone();
    assert_eq!(load["args"], json!({ "instances": 3 }));
}

#[test]
fn stock_routes_happy_path() {
    let (_dir, s) = shop();
    let created = s.post("/stock/item/create/7").ok();
    let id = created["item_id"].as_str().expect("item_id").to_owned();
    assert_eq!(created, json!({ "item_id": id }));
    assert_eq!(
        s.get(&format!("/stock/find/{id}")).ok(),
        json!({ "stock": 0, "price": 7 })
    );
    assert_eq!(s.post(&format!("/stock/add/{id}/10")).ok(), json!(null));
    assert_eq!(s.post(&format!("/stock/subtract/{id}/4")).ok(), json!(null));
    assert_eq!(
        s.get(&format!("/stock/find/{id}")).ok(),
        json!({ "stock": 6, "price": 7 })
    );
    s.post(&format!("/stock/subtract/{id}/6")).ok();
    assert_eq!(s.stock(&id), 0);

    let batch = s.post("/stock/batch_init/4/20/3").ok();
    assert_eq!(batch["n"], json!(4));
    for i in ["0", "3"] {
        assert_eq!(
            s.get(&format!("/stock/find/{i}")).ok(),
            json!({ "stock": 20, "price": 3 })
        );
    }
    s.get("/stock/find/4").err(404);
}

#[test]
fn order_routes_happy_path() {
    let (_dir, s) = shop();
    let user = s.user(100);
    let (a, b) = (s.item(5, 10), s.item(3, 4));
    let created = s.post(&format!("/orders/create/{user}")).ok();
    let order = created["order_id"].as_str().expect("order_id").to_owned();
    assert_eq!(created, json!({ "order_id": order }));
    assert_eq!(
        s.get(&format!("/orders/find/{order}")).ok(),
        json!({ "order_id": order, "paid": false, "items": [], "user_id": user, "total_cost": 0 })
    );
    assert_eq!(
        s.post(&format!("/orders/addItem/{order}/{a}/2")).ok(),
        json!(null)
    );
    s.post(&format!("/orders/addItem/{order}/{b}/3")).ok();
    assert_eq!(
        s.get(&format!("/orders/find/{order}")).ok(),
        json!({
            "order_id": order, "paid": false, "items": [[a, 2], [b, 3]],
            "user_id": user, "total_cost": 2 * 10 + 3 * 4,
        })
    );
    assert_eq!(
        s.post(&format!("/orders/checkout/{order}")).ok(),
        json!(null)
    );
    assert_eq!(
        s.get(&format!("/orders/find/{order}")).ok()["paid"],
        json!(true)
    );
    assert_eq!((s.stock(&a), s.stock(&b)), (3, 0));
    assert_eq!(s.credit(&user), 100 - 32);
}

#[test]
fn orders_batch_init_builds_checkoutable_orders() {
    let (_dir, s) = shop();
    s.post("/stock/batch_init/5/100/2").ok();
    s.post("/payment/batch_init/3/1000").ok();
    let batch = s.post("/orders/batch_init/10/5/3/2").ok();
    assert_eq!(batch["n"], json!(10));
    for o in 0..10 {
        let v = s.get(&format!("/orders/find/{o}")).ok();
        assert_eq!(v["order_id"], json!(o.to_string()));
        assert_eq!(v["paid"], json!(false));
        assert_eq!(v["total_cost"], json!(4));
        let items = v["items"].as_array().expect("items");
        assert_eq!(items.len(), 2, "{v}");
        for it in items {
            let id: u64 = it[0].as_str().expect("item id").parse().expect("numeric");
            assert!(id < 5 && it[1] == json!(1), "{v}");
        }
        let user: u64 = v["user_id"]
            .as_str()
            .expect("user")
            .parse()
            .expect("numeric");
        assert!(user < 3, "{v}");
    }
    s.get("/orders/find/10").err(404);
    // The batch orders reference the batch items and users: checking them all out debits
    // exactly two units and 4 credit each.
    for o in 0..10 {
        s.post(&format!("/orders/checkout/{o}")).ok();
    }
    let stock: i64 = (0..5).map(|i| s.stock(&i.to_string())).sum();
    let credit: i64 = (0..3).map(|u| s.credit(&u.to_string())).sum();
    assert_eq!(stock, 500 - 20);
    assert_eq!(credit, 3000 - 40);
    // n_items = 0 cannot build an order.
    s.post("/orders/batch_init/1/0/3/2").err(400);
}

/// A snapshot of the committed state of the instances a test touches.
fn snapshot(s: &Server, instances: &[(&str, &str)]) -> Vec<serde_json::Value> {
    instances.iter().map(|(l, k)| s.state(l, k)).collect()
}

#[test]
fn unknown_ids_are_rejected_with_a_message_and_change_nothing() {
    let (_dir, s) = shop();
    let user = s.user(100);
    let item = s.item(10, 5);
    let order = s.order(&user, &[(&item, 1)]);
    let known = [
        ("Payment", user.as_str()),
        ("Stock", item.as_str()),
        ("Order", order.as_str()),
    ];
    let before = snapshot(&s, &known);
    // An instance that was never created is a 404 (the lambdas say `missing = not_found`);
    // creating an order for a user who does not exist is the order's rejection, a 400.
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/payment/find_user/ghost", 404),
        ("POST", "/payment/add_funds/ghost/5", 404),
        ("POST", "/payment/pay/ghost/5", 404),
        ("GET", "/stock/find/ghost", 404),
        ("POST", "/stock/add/ghost/5", 404),
        ("POST", "/stock/subtract/ghost/5", 404),
        ("GET", "/orders/find/ghost", 404),
        ("POST", &format!("/orders/addItem/ghost/{item}/1"), 404),
        ("POST", "/orders/checkout/ghost", 404),
        ("POST", "/orders/create/ghost", 400),
    ];
    for (method, path, status) in cases {
        let r = if *method == "GET" {
            s.get(path)
        } else {
            s.post(path)
        };
        let msg = r.err(*status);
        assert!(
            msg.contains("ghost") && msg.contains("does not exist"),
            "{path}: {msg}"
        );
    }
    // Nothing was created for the unknown ids, and nothing else changed.
    for lambda in ["Payment", "Stock", "Order"] {
        assert_eq!(s.state(lambda, "ghost"), json!(null), "{lambda}/ghost");
    }
    assert_eq!(snapshot(&s, &known), before);
}

#[test]
fn going_below_zero_is_rejected_and_changes_nothing() {
    let (_dir, s) = shop();
    let user = s.user(10);
    let item = s.item(3, 1);
    let msg = s.post(&format!("/payment/pay/{user}/11")).err(400);
    assert!(msg.contains("not enough credit"), "{msg}");
    assert_eq!(s.credit(&user), 10);
    let r = s.post(&format!("/stock/subtract/{item}/4"));
    let msg = r.err(400);
    assert!(msg.contains("not enough stock"), "{msg}");
    // The rejection carries the error value as detail.
    assert_eq!(
        r.json()["detail"],
        json!({ "OutOfStock": { "item": item, "available": 3, "wanted": 4 } })
    );
    assert_eq!(s.stock(&item), 3);
}

#[test]
fn amounts_must_be_positive_and_arithmetic_never_wraps() {
    let (_dir, s) = shop();
    let user = s.user(10);
    let item = s.item(3, 2);
    let order = s.order(&user, &[(&item, 1)]);
    let known = [
        ("Payment", user.as_str()),
        ("Stock", item.as_str()),
        ("Order", order.as_str()),
    ];
    let before = snapshot(&s, &known);
    for path in [
        format!("/stock/subtract/{item}/-1"),
        format!("/stock/add/{item}/0"),
        format!("/stock/add/{item}/-5"),
        format!("/payment/add_funds/{user}/-100"),
        format!("/payment/pay/{user}/-1"),
        format!("/orders/addItem/{order}/{item}/0"),
        "/stock/item/create/-3".to_owned(),
    ] {
        let msg = s.post(&path).err(400);
        assert!(msg.contains("must be"), "{path}: {msg}");
    }
    // Near i64::MAX an addition is refused, not wrapped to a negative number.
    let rich = s.user(i64::MAX - 1);
    let msg = s.post(&format!("/payment/add_funds/{rich}/2")).err(400);
    assert!(msg.contains("overflow"), "{msg}");
    assert_eq!(s.credit(&rich), i64::MAX - 1);
    let pricey = s.item(1, i64::MAX / 2 + 1);
    let msg = s
        .post(&format!("/orders/addItem/{order}/{pricey}/2"))
        .err(400);
    assert!(msg.contains("overflow"), "{msg}");
    assert_eq!(snapshot(&s, &known), before);
    // A batch has an upper bound; beyond it nothing is created.
    let msg = s.post("/payment/batch_init/1000000000000/1").err(400);
    assert!(msg.contains("at most"), "{msg}");
    s.post("/payment/batch_init/2/-1").err(400);
    assert_eq!(s.state("Payment", "0"), json!(null));
}

#[test]
fn adding_a_missing_item_is_rejected_and_leaves_the_order_alone() {
    let (_dir, s) = shop();
    let user = s.user(10);
    let item = s.item(3, 2);
    let order = s.order(&user, &[(&item, 1)]);
    let before = s.get(&format!("/orders/find/{order}")).ok();
    let msg = s
        .post(&format!("/orders/addItem/{order}/nosuchitem/1"))
        .err(400);
    assert!(msg.contains("nosuchitem"), "{msg}");
    assert_eq!(s.get(&format!("/orders/find/{order}")).ok(), before);
    assert_eq!(s.state("Stock", "nosuchitem"), json!(null));
}

#[test]
fn checking_out_twice_charges_once() {
    let (_dir, s) = shop();
    let user = s.user(100);
    let item = s.item(10, 7);
    let order = s.order(&user, &[(&item, 2)]);
    s.post(&format!("/orders/checkout/{order}")).ok();
    let after_first = (s.credit(&user), s.stock(&item));
    assert_eq!(after_first, (86, 8));
    let msg = s.post(&format!("/orders/checkout/{order}")).err(400);
    assert!(msg.contains("already paid"), "{msg}");
    assert_eq!((s.credit(&user), s.stock(&item)), after_first);
}

#[test]
fn unparsable_arguments_of_the_shop_routes_are_400s_that_change_nothing() {
    let (_dir, s) = shop();
    let user = s.user(10);
    let item = s.item(3, 2);
    let known = [("Payment", user.as_str()), ("Stock", item.as_str())];
    let before = snapshot(&s, &known);

    // The routes declared on the handlers.
    s.post(&format!("/stock/add/{item}/abc")).err(400);
    s.post(&format!("/payment/pay/{user}/1.5")).err(400);
    s.post("/stock/item/create/cheap").err(400);
    // The batch-initialisation routes (the shop's own axum routes).
    s.post("/payment/batch_init/many/10").err(400);
    s.post("/stock/batch_init/2/x/1").err(400);
    s.post("/orders/batch_init/2/2/2/-").err(400);
    for lambda in ["Payment", "Stock", "Order"] {
        assert_eq!(s.state(lambda, "0"), json!(null), "{lambda}/0");
    }

    assert_eq!(snapshot(&s, &known), before);
}

#[test]
fn checkout_is_all_or_nothing() {
    let (_dir, s) = shop();
    let rich = s.user(1_000);
    let poor = s.user(29);
    let a = s.item(5, 10);
    let b = s.item(1, 10);
    let stocks = |s: &Server| (s.stock(&a), s.stock(&b));

    // The second item lacks stock: the first item's subtraction is rolled back.
    let order = s.order(&rich, &[(&a, 2), (&b, 3)]);
    let msg = s.post(&format!("/orders/checkout/{order}")).err(400);
    assert!(msg.contains("nothing was charged"), "{msg}");
    assert_eq!(stocks(&s), (5, 1));
    assert_eq!(s.credit(&rich), 1_000);
    assert_eq!(
        s.get(&format!("/orders/find/{order}")).ok()["paid"],
        json!(false)
    );

    // The user lacks credit (30 > 29): both subtractions are rolled back.
    let order = s.order(&poor, &[(&a, 2), (&b, 1)]);
    s.post(&format!("/orders/checkout/{order}")).err(400);
    assert_eq!(stocks(&s), (5, 1));
    assert_eq!(s.credit(&poor), 29);
    assert_eq!(
        s.get(&format!("/orders/find/{order}")).ok()["paid"],
        json!(false)
    );

    // The user of an order does not exist: the order is not even created.
    let msg = s.post("/orders/create/nobody").err(400);
    assert!(
        msg.contains("nobody") && msg.contains("does not exist"),
        "{msg}"
    );
    assert_eq!(stocks(&s), (5, 1));

    // With one more unit of credit the same order goes through and debits exactly.
    s.post(&format!("/payment/add_funds/{poor}/1")).ok();
    let order = s.order(&poor, &[(&a, 2), (&b, 1)]);
    s.post(&format!("/orders/checkout/{order}")).ok();
    assert_eq!(stocks(&s), (3, 0));
    assert_eq!(s.credit(&poor), 0);
    assert_eq!(
        s.get(&format!("/orders/find/{order}")).ok()["paid"],
        json!(true)
    );
    assert_eq!(s.credit(&rich), 1_000);
}
