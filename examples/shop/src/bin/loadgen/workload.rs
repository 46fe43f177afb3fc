//! The request mixes: which request comes next, and what an answer means for the next one.

use std::collections::VecDeque;

use crate::http::{Outcome, Req};

/// The kind of a request, for per-kind latencies and for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `POST /orders/create/{user}`.
    Create,
    /// `POST /orders/addItem/{order}/{item}/1`.
    AddItem,
    /// `GET /orders/find/{order}`.
    FindOrder,
    /// `POST /orders/checkout/{order}`.
    Checkout,
    /// `POST /stock/add/{item}/1`.
    StockAdd,
    /// `GET /stock/find/{item}`.
    FindStock,
}

impl OpKind {
    /// Short name for output.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::AddItem => "addItem",
            OpKind::FindOrder => "find",
            OpKind::Checkout => "checkout",
            OpKind::StockAdd => "stock_add",
            OpKind::FindStock => "stock_find",
        }
    }
}

/// One request of a mix.
#[derive(Debug, Clone)]
pub struct Op {
    /// What kind it is.
    pub kind: OpKind,
    /// The HTTP request.
    pub req: Req,
    /// The order (checkout, addItem, find) or item (stock add) it is about.
    pub key: String,
    /// For `mixed`: the session this request belongs to.
    session: Option<Session>,
}

/// The generator of the workloads (splitmix64).
pub use stateful_runtime::mix::SplitMix as Rng;

/// One shopper's way through `mixed`: create, addItem, addItem, find, checkout.
#[derive(Debug, Clone)]
pub struct Session {
    /// 0 create, 1–2 addItem, 3 find, 4 checkout.
    step: u8,
    /// The order, once created.
    order: String,
}

/// A request mix. Shared by all request tasks behind a lock.
pub enum Workload {
    /// Checkouts of orders from a pool, each at most once (an order can be paid once).
    Orders {
        /// Orders not drawn yet.
        pool: Vec<String>,
    },
    /// `POST /stock/add/{random item}/1`.
    Counter {
        /// Items "0".."items-1".
        items: u64,
        /// Key picker.
        rng: Rng,
    },
    /// `GET /stock/find/{random item}`: reads only.
    Read {
        /// Items "0".."items-1".
        items: u64,
        /// Key picker.
        rng: Rng,
    },
    /// Shopping sessions: create (20%), addItem (40%), find (20%), checkout (20%).
    Mixed {
        /// Items "0".."items-1".
        items: u64,
        /// Users "0".."users-1".
        users: u64,
        /// Key picker.
        rng: Rng,
        /// Sessions whose next request can be sent.
        ready: VecDeque<Session>,
    },
}

impl Workload {
    /// The next request, or `None` if the mix has nothing left (the order pool is used up).
    pub fn next(&mut self) -> Option<Op> {
        match self {
            Workload::Orders { pool } => pool.pop().map(|order| Op {
                kind: OpKind::Checkout,
                req: Req::post(format!("/orders/checkout/{order}")),
                key: order,
                session: None,
            }),
            Workload::Counter { items, rng } => {
                let item = rng.below(*items).to_string();
                Some(Op {
                    kind: OpKind::StockAdd,
                    req: Req::post(format!("/stock/add/{item}/1")),
                    key: item,
                    session: None,
                })
            }
            Workload::Read { items, rng } => {
                let item = rng.below(*items).to_string();
                Some(Op {
                    kind: OpKind::FindStock,
                    req: Req::get(format!("/stock/find/{item}")),
                    key: item,
                    session: None,
                })
            }
            Workload::Mixed {
                items,
                users,
                rng,
                ready,
            } => Some(match ready.pop_front() {
                None => {
                    let user = rng.below(*users);
                    Op {
                        kind: OpKind::Create,
                        req: Req::post(format!("/orders/create/{user}")),
                        key: String::new(),
                        session: Some(Session {
                            step: 0,
                            order: String::new(),
                        }),
                    }
                }
                Some(s) => {
                    let order = s.order.clone();
                    let (kind, req) = match s.step {
                        1 | 2 => {
                            let item = rng.below(*items);
                            (
                                OpKind::AddItem,
                                Req::post(format!("/orders/addItem/{order}/{item}/1")),
                            )
                        }
                        3 => (OpKind::FindOrder, Req::get(format!("/orders/find/{order}"))),
                        _ => (
                            OpKind::Checkout,
                            Req::post(format!("/orders/checkout/{order}")),
                        ),
                    };
                    Op {
                        kind,
                        req,
                        key: order,
                        session: Some(s),
                    }
                }
            }),
        }
    }

    /// Takes note of an answer: in `mixed`, a successful step makes the session's next
    /// request ready; a failed one ends the session.
    pub fn done(&mut self, op: Op, outcome: &Outcome) {
        let Workload::Mixed { ready, .. } = self else {
            return;
        };
        let Some(mut s) = op.session else { return };
        let Ok(reply) = outcome else { return };
        if !reply.ok() || s.step >= 4 {
            return;
        }
        if s.step == 0 {
            let id = reply
                .json()
                .and_then(|v| v.get("order_id")?.as_str().map(str::to_owned));
            match id {
                Some(id) => s.order = id,
                None => return,
            }
        }
        s.step += 1;
        ready.push_back(s);
    }
}
