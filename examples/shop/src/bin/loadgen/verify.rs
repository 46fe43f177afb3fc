//! `--verify`: stock and credit read back through the find endpoints must match the
//! successful checkouts (and stock additions) the run saw.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::http::{Pool, Req};
use crate::run::{Effect, Ledger};

/// Concurrent requests used for reading state.
const READERS: usize = 64;

/// Runs `f` on every key with [`READERS`] requests in flight; the first error wins.
pub async fn for_all<T, F, Fut>(keys: Vec<String>, f: F) -> Result<HashMap<String, T>, String>
where
    T: Send + 'static,
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, String>> + Send,
{
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..READERS {
        let (keys, next, f) = (keys.clone(), next.clone(), f.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(k) = keys.get(i) else { break };
                out.push((k.clone(), f(k.clone()).await?));
            }
            Ok::<_, String>(out)
        });
    }
    let mut all = HashMap::with_capacity(keys.len());
    while let Some(r) = tasks.join_next().await {
        let part = r.map_err(|e| format!("a reader task failed: {e}"))??;
        all.extend(part);
    }
    Ok(all)
}

fn int(v: &Value, field: &str, what: &str) -> Result<i64, String> {
    v.get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("{what}: no integer `{field}` in {v}"))
}

/// Reads the stock of `items`.
pub async fn stocks(pool: &Pool, items: Vec<String>) -> Result<HashMap<String, i64>, String> {
    let pool = pool.clone();
    for_all(items, move |k| {
        let pool = pool.clone();
        async move {
            let v = pool.json(&Req::get(format!("/stock/find/{k}"))).await?;
            int(&v, "stock", &format!("item {k}"))
        }
    })
    .await
}

/// Reads the credit of `users`.
pub async fn credits(pool: &Pool, users: Vec<String>) -> Result<HashMap<String, i64>, String> {
    let pool = pool.clone();
    for_all(users, move |k| {
        let pool = pool.clone();
        async move {
            let v = pool
                .json(&Req::get(format!("/payment/find_user/{k}")))
                .await?;
            int(&v, "credit", &format!("user {k}"))
        }
    })
    .await
}

/// An order as `GET /orders/find` shows it.
struct OrderView {
    items: Vec<(String, i64)>,
    user: String,
    total: i64,
    paid: bool,
}

async fn orders(pool: &Pool, ids: Vec<String>) -> Result<HashMap<String, OrderView>, String> {
    let pool = pool.clone();
    for_all(ids, move |k| {
        let pool = pool.clone();
        async move {
            let v = pool.json(&Req::get(format!("/orders/find/{k}"))).await?;
            let what = format!("order {k}");
            let items = v
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{what}: no `items` in {v}"))?
                .iter()
                .map(|e| {
                    match (
                        e.get(0).and_then(Value::as_str),
                        e.get(1).and_then(Value::as_i64),
                    ) {
                        (Some(i), Some(q)) => Ok((i.to_owned(), q)),
                        _ => Err(format!("{what}: bad item entry {e}")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(OrderView {
                items,
                user: v
                    .get("user_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{what}: no `user_id` in {v}"))?
                    .to_owned(),
                total: int(&v, "total_cost", &what)?,
                paid: v.get("paid").and_then(Value::as_bool).unwrap_or(false),
            })
        }
    })
    .await
}

/// Stock and credit before the run.
pub struct Snapshot {
    /// Stock by item.
    pub stock: HashMap<String, i64>,
    /// Credit by user.
    pub credit: HashMap<String, i64>,
}

/// The verdict.
pub struct Verdict {
    /// Whether everything matched.
    pub pass: bool,
    /// The numbers, for `--json`.
    pub json: Value,
}

/// Compares the state after the run with `before` and the run's `ledger`; prints the verdict.
pub async fn verify(pool: &Pool, before: &Snapshot, ledger: &Ledger) -> Result<Verdict, String> {
    let ids: Vec<String> = ledger
        .checkouts
        .iter()
        .map(|(o, _)| o.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let views = orders(pool, ids).await?;
    let mut problems = Vec::new();
    // Expected decreases: stock by item, credit by user.
    let mut stock_dec: BTreeMap<String, i64> = BTreeMap::new();
    let mut credit_dec: BTreeMap<String, i64> = BTreeMap::new();
    let (mut paid, mut items_paid, mut cost_paid, mut resolved) = (0u64, 0i64, 0i64, 0u64);
    for (order, effect) in &ledger.checkouts {
        let Some(v) = views.get(order) else { continue };
        for (item, _) in &v.items {
            stock_dec.entry(item.clone()).or_insert(0);
        }
        credit_dec.entry(v.user.clone()).or_insert(0);
        let applied = match effect {
            Effect::Applied => {
                if !v.paid {
                    problems.push(format!(
                        "order {order}: checkout answered 2xx but it is not paid"
                    ));
                }
                true
            }
            Effect::NotApplied => false,
            Effect::Unknown => {
                resolved += 1;
                v.paid
            }
        };
        if applied {
            paid += 1;
            for (item, q) in &v.items {
                *stock_dec.entry(item.clone()).or_insert(0) += q;
                items_paid += q;
            }
            *credit_dec.entry(v.user.clone()).or_insert(0) += v.total;
            cost_paid += v.total;
        }
    }
    let (mut adds, mut unknown_adds) = (0i64, 0i64);
    for (item, effect) in &ledger.adds {
        let e = stock_dec.entry(item.clone()).or_insert(0);
        match effect {
            Effect::Applied => {
                *e -= 1;
                adds += 1;
            }
            Effect::NotApplied => {}
            Effect::Unknown => unknown_adds += 1,
        }
    }
    let after_stock = stocks(pool, stock_dec.keys().cloned().collect()).await?;
    let after_credit = credits(pool, credit_dec.keys().cloned().collect()).await?;
    let mut actual_stock_dec = 0i64;
    let mut actual_credit_dec = 0i64;
    let mut mismatched = 0u64;
    for (item, want) in &stock_dec {
        let (Some(b), Some(a)) = (before.stock.get(item), after_stock.get(item)) else {
            problems.push(format!(
                "item {item} was not in the snapshot taken before the run"
            ));
            continue;
        };
        actual_stock_dec += b - a;
        if unknown_adds == 0 && b - a != *want {
            mismatched += 1;
            if mismatched <= 5 {
                problems.push(format!(
                    "item {item}: stock went {b} → {a}, expected −{want}"
                ));
            }
        }
    }
    for (user, want) in &credit_dec {
        let (Some(b), Some(a)) = (before.credit.get(user), after_credit.get(user)) else {
            problems.push(format!(
                "user {user} was not in the snapshot taken before the run"
            ));
            continue;
        };
        actual_credit_dec += b - a;
        if b - a != *want {
            mismatched += 1;
            if mismatched <= 5 {
                problems.push(format!(
                    "user {user}: credit went {b} → {a}, expected −{want}"
                ));
            }
        }
    }
    let expected_stock_dec = items_paid - adds;
    let stock_ok = actual_stock_dec <= expected_stock_dec
        && actual_stock_dec >= expected_stock_dec - unknown_adds;
    let credit_ok = actual_credit_dec == cost_paid;
    let pass = stock_ok && credit_ok && mismatched == 0 && problems.is_empty();
    println!(
        "verify: {paid} successful checkouts of {} ({items_paid} items, total cost {cost_paid}); {adds} stock additions",
        ledger.checkouts.len()
    );
    println!(
        "verify: stock decrease {actual_stock_dec} (expected {expected_stock_dec}{}) over {} items; credit decrease {actual_credit_dec} (expected {cost_paid}) over {} users",
        if unknown_adds > 0 {
            format!(", minus up to {unknown_adds} additions without an answer")
        } else {
            String::new()
        },
        stock_dec.len(),
        credit_dec.len()
    );
    if resolved > 0 {
        println!("verify: {resolved} checkouts got no answer; their order's `paid` flag decided");
    }
    for p in &problems {
        println!("verify: {p}");
    }
    println!("verify: {}", if pass { "PASS" } else { "FAIL" });
    Ok(Verdict {
        pass,
        json: json!({
            "pass": pass,
            "successful_checkouts": paid,
            "items_in_successful_checkouts": items_paid,
            "cost_of_successful_checkouts": cost_paid,
            "successful_stock_additions": adds,
            "stock_decrease": actual_stock_dec,
            "expected_stock_decrease": expected_stock_dec,
            "credit_decrease": actual_credit_dec,
            "expected_credit_decrease": cost_paid,
            "unanswered_checkouts_resolved": resolved,
            "mismatched_keys": mismatched,
            "problems": problems,
        }),
    })
}
