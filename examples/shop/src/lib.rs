//! The paper's demo: orders, payment and stock as stateful functions (the library: the
//! app module and its batch routes; `main.rs` serves it).
//!
//! `Order::checkout` is the paper's Listing 1: inside one `transaction!` it subtracts the stock
//! of every item and charges the user; if any of it fails, everything is rolled back.
//! `cargo run -p shop -- graph` prints the dataflow graph.
//!
//! The REST API is the one existing clients of this workload use: most routes are declared on
//! the handlers with `#[route]`; the batch-initialisation routes, which fan out to many
//! instances, are added in [`routes`].

/// The lambdas of the shop: stock, payment and orders.
#[stateful_runtime::app]
pub mod shop {
    use stateful_runtime::prelude::*;

    /// Why a shop operation was rejected.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
    pub enum ShopError {
        /// Not enough stock.
        #[error("not enough stock of `{item}`: {available} left, {wanted} wanted")]
        OutOfStock {
            /// The item.
            item: String,
            /// Stock left.
            available: i64,
            /// Amount asked for.
            wanted: i64,
        },
        /// The user's credit would go below zero.
        #[error("user `{0}` has not enough credit")]
        NotEnoughCredit(String),
        /// The order was paid already.
        #[error("order `{0}` is already paid")]
        AlreadyPaid(String),
        /// The checkout transaction failed and was rolled back.
        #[error("checkout of order `{0}` failed; nothing was charged")]
        CheckoutFailed(String),
        /// An amount, quantity, price or credit out of its range.
        #[error("{what} must be {rule}, not {value}")]
        Invalid {
            /// What was given.
            what: String,
            /// The rule it breaks.
            rule: String,
            /// The value given.
            value: i64,
        },
        /// The result does not fit an `i64`.
        #[error("{0} would overflow")]
        Overflow(String),
        /// A call failed in the runtime (a callee that does not exist, for one).
        #[error(transparent)]
        Call(#[from] CallError),
    }

    impl ShopError {
        /// `value` must be more than zero.
        fn positive(what: &str, value: i64) -> Result<i64, ShopError> {
            if value > 0 {
                Ok(value)
            } else {
                Err(ShopError::Invalid {
                    what: what.into(),
                    rule: "positive".into(),
                    value,
                })
            }
        }

        /// `value` must not be below zero.
        fn not_negative(what: &str, value: i64) -> Result<i64, ShopError> {
            if value >= 0 {
                Ok(value)
            } else {
                Err(ShopError::Invalid {
                    what: what.into(),
                    rule: "zero or more".into(),
                    value,
                })
            }
        }
    }

    /// Checked arithmetic: an overflow is a rejection, never a wrapped number.
    fn checked(what: &str, v: Option<i64>) -> Result<i64, ShopError> {
        v.ok_or_else(|| ShopError::Overflow(what.into()))
    }

    /// The state of one stock item.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct StockState {
        stock: i64,
        price: i64,
    }

    impl StockState {
        /// An item with `stock` units at `price` (neither negative).
        pub fn new(stock: i64, price: i64) -> Result<Self, ShopError> {
            let stock = ShopError::not_negative("the stock", stock)?;
            let price = ShopError::not_negative("the price", price)?;
            Ok(StockState { stock, price })
        }
    }

    /// What `Stock::find` answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ItemView {
        /// Units in stock.
        pub stock: i64,
        /// Unit price.
        pub price: i64,
    }

    /// What `Stock::create` answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ItemCreated {
        /// The new item's id.
        pub item_id: String,
    }

    /// An item that was never created answers 404 (`missing = not_found`).
    #[lambda(key = String, state = StockState, missing = not_found)]
    impl Stock {
        #[route(post, "/stock/item/create/{price}", key = new)]
        async fn create(ctx: &mut Ctx<Self>, price: i64) -> Result<ItemCreated, ShopError> {
            let price = ShopError::not_negative("the price", price)?;
            ctx.set_state(StockState { stock: 0, price });
            Ok(ItemCreated {
                item_id: ctx.key().clone(),
            })
        }

        /// Sets stock and price (batch initialisation).
        #[create]
        async fn init(ctx: &mut Ctx<Self>, stock: i64, price: i64) -> Result<(), ShopError> {
            ctx.set_state(StockState::new(stock, price)?);
            Ok(())
        }

        #[route(post, "/stock/add/{key}/{amount}")]
        async fn add(ctx: &mut Ctx<Self>, amount: i64) -> Result<(), ShopError> {
            let amount = ShopError::positive("the amount", amount)?;
            let mut s = ctx.state_mut();
            s.stock = checked("the stock", s.stock.checked_add(amount))?;
            Ok(())
        }

        #[route(post, "/stock/subtract/{key}/{amount}")]
        async fn subtract(ctx: &mut Ctx<Self>, amount: i64) -> Result<(), ShopError> {
            let amount = ShopError::positive("the amount", amount)?;
            let item = ctx.key().clone();
            let mut s = ctx.state_mut();
            if s.stock < amount {
                return Err(ShopError::OutOfStock {
                    item,
                    available: s.stock,
                    wanted: amount,
                });
            }
            s.stock -= amount;
            Ok(())
        }

        #[route(get, "/stock/find/{key}")]
        async fn find(ctx: &Ctx<Self>) -> Result<ItemView, ShopError> {
            let s = ctx.state();
            Ok(ItemView {
                stock: s.stock,
                price: s.price,
            })
        }
    }

    /// The state of one user's wallet.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct PaymentState {
        credit: i64,
    }

    impl PaymentState {
        /// A wallet with `credit` (not negative).
        pub fn new(credit: i64) -> Result<Self, ShopError> {
            let credit = ShopError::not_negative("the credit", credit)?;
            Ok(PaymentState { credit })
        }
    }

    /// What `Payment::find` answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UserView {
        /// The user.
        pub user_id: String,
        /// Credit left.
        pub credit: i64,
    }

    /// What `Payment::create` answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UserCreated {
        /// The new user's id.
        pub user_id: String,
    }

    /// A user who was never created answers 404.
    #[lambda(key = String, state = PaymentState, missing = not_found)]
    impl Payment {
        #[route(post, "/payment/create_user", key = new)]
        async fn create(ctx: &mut Ctx<Self>) -> Result<UserCreated, ShopError> {
            ctx.set_state(PaymentState { credit: 0 });
            Ok(UserCreated {
                user_id: ctx.key().clone(),
            })
        }

        /// Creates the user with some credit (batch initialisation).
        #[create]
        async fn init(ctx: &mut Ctx<Self>, credit: i64) -> Result<(), ShopError> {
            ctx.set_state(PaymentState::new(credit)?);
            Ok(())
        }

        #[route(post, "/payment/add_funds/{key}/{amount}")]
        async fn add_funds(ctx: &mut Ctx<Self>, amount: i64) -> Result<(), ShopError> {
            let amount = ShopError::positive("the amount", amount)?;
            let mut s = ctx.state_mut();
            s.credit = checked("the credit", s.credit.checked_add(amount))?;
            Ok(())
        }

        /// Takes `amount` (zero for an empty order) from the credit.
        #[route(post, "/payment/pay/{key}/{amount}")]
        async fn pay(ctx: &mut Ctx<Self>, amount: i64) -> Result<(), ShopError> {
            let amount = ShopError::not_negative("the amount", amount)?;
            let user = ctx.key().clone();
            let mut s = ctx.state_mut();
            if s.credit < amount {
                return Err(ShopError::NotEnoughCredit(user));
            }
            s.credit -= amount;
            Ok(())
        }

        #[route(get, "/payment/find_user/{key}")]
        async fn find(ctx: &Ctx<Self>) -> Result<UserView, ShopError> {
            Ok(UserView {
                user_id: ctx.key().clone(),
                credit: ctx.state().credit,
            })
        }
    }

    /// The state of one order.
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    pub struct OrderState {
        user_id: String,
        items: Vec<(String, i64)>,
        paid: bool,
        total_cost: i64,
    }

    impl OrderState {
        /// An unpaid order of `user_id` for `items` (positive quantities) at `total_cost`.
        pub fn new(
            user_id: String,
            items: Vec<(String, i64)>,
            total_cost: i64,
        ) -> Result<Self, ShopError> {
            let total_cost = ShopError::not_negative("the total cost", total_cost)?;
            for (_, qty) in &items {
                ShopError::positive("a quantity", *qty)?;
            }
            Ok(OrderState {
                user_id,
                items,
                paid: false,
                total_cost,
            })
        }
    }

    /// What `Order::find` answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderView {
        /// The order.
        pub order_id: String,
        /// Whether it was checked out.
        pub paid: bool,
        /// Items and quantities.
        pub items: Vec<(String, i64)>,
        /// The buyer.
        pub user_id: String,
        /// Sum of price × quantity.
        pub total_cost: i64,
    }

    /// What `Order::create` answers.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderCreated {
        /// The new order's id.
        pub order_id: String,
    }

    /// An order that was never created answers 404.
    #[lambda(key = String, state = OrderState, missing = not_found)]
    impl Order {
        #[route(post, "/orders/create/{user_id}", key = new)]
        async fn create(ctx: &mut Ctx<Self>, user_id: String) -> Result<OrderCreated, ShopError> {
            // The user must exist (an unknown id is a 4xx, and nothing is created).
            ctx.call::<Payment>(&user_id).find().await?;
            ctx.set_state(OrderState {
                user_id,
                ..OrderState::default()
            });
            Ok(OrderCreated {
                order_id: ctx.key().clone(),
            })
        }

        /// Creates a complete order (batch initialisation).
        #[create]
        async fn init(
            ctx: &mut Ctx<Self>,
            user_id: String,
            items: Vec<(String, i64)>,
            total_cost: i64,
        ) -> Result<(), ShopError> {
            ctx.set_state(OrderState::new(user_id, items, total_cost)?);
            Ok(())
        }

        #[route(post, "/orders/addItem/{key}/{item_id}/{quantity}")]
        async fn add_item(
            ctx: &mut Ctx<Self>,
            item_id: String,
            quantity: i64,
        ) -> Result<(), ShopError> {
            let quantity = ShopError::positive("the quantity", quantity)?;
            let item = ctx.call::<Stock>(&item_id).find().await?;
            let cost = checked("the order's cost", item.price.checked_mul(quantity))?;
            let mut s = ctx.state_mut();
            s.total_cost = checked("the order's cost", s.total_cost.checked_add(cost))?;
            s.items.push((item_id, quantity));
            Ok(())
        }

        #[route(get, "/orders/find/{key}")]
        async fn find(ctx: &Ctx<Self>) -> Result<OrderView, ShopError> {
            let s = ctx.state();
            Ok(OrderView {
                order_id: ctx.key().clone(),
                paid: s.paid,
                items: s.items.clone(),
                user_id: s.user_id.clone(),
                total_cost: s.total_cost,
            })
        }

        /// The paper's Listing 1: all stock subtractions and the payment, atomically.
        #[route(post, "/orders/checkout/{key}")]
        async fn checkout(ctx: &mut Ctx<Self>) -> Result<(), ShopError> {
            let order = ctx.state().clone();
            let id = ctx.key().clone();
            if order.paid {
                return Err(ShopError::AlreadyPaid(id));
            }
            let (items, user, total) = (order.items, order.user_id, order.total_cost);
            transaction! {
                for (item, qty) in &items {
                    ctx.call::<Stock>(item).subtract(*qty).await?;
                }
                ctx.call::<Payment>(&user).pay(total).await?;
                ctx.state_mut().paid = true;
                Ok(())
            }
            .on_failure_return(Err(ShopError::CheckoutFailed(id.clone())))
        }
    }
}

pub mod load;
pub mod routes;

#[cfg(test)]
mod tests {
    use crate::shop;
    use stateful_runtime::Lambda;

    #[test]
    fn graph_json_snapshot() {
        insta::assert_snapshot!(shop::GRAPH_JSON);
    }

    #[test]
    fn graph_dot_snapshot_parses_back() {
        insta::assert_snapshot!(shop::GRAPH_DOT);
        let g = graphviz_rust::parse(shop::GRAPH_DOT).expect("DOT parses");
        let text = format!("{g:?}");
        assert!(
            text.contains("diamond"),
            "the checkout transaction is an AND-node"
        );
        assert!(text.contains("dashed"), "reply edges close the cycles");
    }

    #[test]
    fn handlers_and_routes_are_in_declaration_order() {
        let names: Vec<&str> = shop::Order::HANDLERS.iter().map(|h| h.name).collect();
        assert_eq!(names, ["create", "init", "add_item", "find", "checkout"]);
        assert_eq!(
            shop::Order::HANDLERS[2].route,
            Some(("POST", "/orders/addItem/{key}/{item_id}/{quantity}"))
        );
        assert_eq!(
            shop::Order::HANDLERS[2].params,
            [("item_id", "String"), ("quantity", "i64")]
        );
        assert_eq!(shop::Stock::ID, 0);
        assert_eq!(shop::Order::ID, 2);
        let app = shop::app();
        assert_eq!(app.lambdas().len(), 3);
        assert_eq!(
            app.lambda("Payment").and_then(|l| l.handler_index("pay")),
            Some(3)
        );
    }

    #[test]
    fn json_arguments_follow_the_parameters() {
        let app = shop::app();
        let order = app.codec(shop::Order::ID).expect("the order codec");
        let bytes = order
            .args_from_json(2, serde_json::json!({"item_id": "apple", "quantity": 3}))
            .expect("valid arguments");
        assert!(!bytes.is_empty());
        assert!(
            order
                .args_from_json(2, serde_json::json!({"item": "apple"}))
                .is_err()
        );
        assert!(order.args_from_json(9, serde_json::Value::Null).is_err());
    }
}
