//! The console in a real browser (headless Chromium over WebDriver), as a newcomer uses it:
//! the page loads, the graph shows the shop's three lambdas and its AND-node, the generator
//! starts from the page and the live numbers change, a checkout's trace opens as a tree, and
//! an item's stock steps back in time with the history slider (by keyboard). A screenshot of
//! each view is saved under the target dir (`console/`). Skipped, and it says so, where no
//! browser is installed.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use stateful_tests::{Browser, TestDir};

fn screens() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")
}

#[test]
fn a_newcomer_runs_load_from_the_page_opens_a_trace_and_steps_an_item_back() {
    let browser = match Browser::start(1400, 1000) {
        Ok(b) => b,
        Err(why) => {
            eprintln!(
                "SKIPPED: no browser for the console test ({why}); .ci/run installs chromium and chromium-driver"
            );
            return;
        }
    };
    let mut dir = TestDir::new(env!("CARGO_BIN_EXE_shop")).with_workers(1);
    let s = dir.start();
    browser.goto(&format!("{}/", s.base()));

    // The graph: three lambdas and the transaction's AND-node.
    let names = browser.wait_for(
        "the graph",
        "const n = [...document.querySelectorAll('#graph g.node[data-kind=lambda]')].map(g => g.dataset.name); return n.length ? n : null;",
    );
    assert_eq!(names, serde_json::json!(["Stock", "Payment", "Order"]));
    let load_ms = browser.eval(
        "const n = performance.getEntriesByType('navigation')[0]; return n ? Math.round(n.loadEventEnd) : null;",
    );
    eprintln!("the page loaded in {load_ms} ms (navigation timing: loadEventEnd)");
    let ands = browser
        .eval("return document.querySelectorAll('#graph g.node[data-kind=and] polygon').length;");
    assert_eq!(ands, 1, "one AND-node");
    browser.screenshot(&screens().join("graph.png"));

    // Load from the page: the checkout mix, 8 connections.
    browser.wait_for(
        "the mixes",
        "return document.querySelector('#mix option[value=checkout]') !== null;",
    );
    browser.eval("document.getElementById('mix').value = 'checkout'; document.getElementById('amount').value = '8'; return true;");
    browser.click("#start");
    let order_live = "const t = document.querySelector('#graph g.node[data-name=Order] text.live'); return t && /^[1-9]/.test(t.textContent) ? t.textContent : null;";
    let first = browser.wait_for("live numbers on Order", order_live);
    let changed = browser.wait_for(
        "the numbers changing",
        &format!("const t = document.querySelector('#graph g.node[data-name=Order] text.live'); return t && t.textContent !== {first} ? t.textContent : null;"),
    );
    assert_ne!(first, changed);
    let edge = browser.wait_for(
        "a number on the Order → Stock call edge",
        "const g = document.querySelector('#graph g.edge[data-kind=call][data-from=Order][data-to=Stock] text.live'); return g && g.textContent;",
    );
    assert!(edge.as_str().is_some_and(|t| t.ends_with("/s")), "{edge}");
    let verdict = browser.eval("return document.getElementById('verdict').textContent;");
    assert!(
        verdict
            .as_str()
            .is_some_and(|v| v.contains("req/s") && v.contains("bottleneck")),
        "{verdict}"
    );
    browser.screenshot(&screens().join("graph-live.png"));

    // Rescale from the page while the load runs: 1 → 2 workers.
    browser.eval("document.getElementById('workers').value = '2'; return true;");
    browser.click("#rescale");
    let rescaled = browser.wait_for(
        "the rescale",
        "const t = document.getElementById('workers-status').textContent; return t.includes('last rescale 1 → 2') ? t : null;",
    );
    assert!(
        rescaled
            .as_str()
            .is_some_and(|t| t.starts_with("2 worker(s)")),
        "{rescaled}"
    );
    let errors = browser.eval("return document.getElementById('error').textContent;");
    assert_eq!(errors, "", "no error shown");

    // Charts after a few seconds of load.
    std::thread::sleep(Duration::from_secs(3));
    browser.click("#t-charts");
    browser.wait_for(
        "the charts",
        "return document.querySelectorAll('#charts-view polyline').length >= 5;",
    );
    browser.screenshot(&screens().join("charts.png"));
    browser.click("#stop");
    browser.wait_for(
        "the generator stopped",
        "return document.getElementById('load-status').textContent === 'stopped';",
    );

    // One item changed three more times, by hand, for the history.
    for _ in 0..3 {
        assert_eq!(s.post("/stock/add/7/5").status, 200);
    }

    // The request log's newest page, and one checkout's trace.
    browser.click("#t-requests");
    browser.click("#log-latest");
    browser.wait_for(
        "the log",
        "return document.querySelectorAll('#log tr').length > 1;",
    );
    browser.eval("document.getElementById('log-lambda').value = 'Order'; document.getElementById('log-outcome').value = 'ok'; return true;");
    browser.click("#log-filter button[type=submit]");
    browser.wait_for(
        "checkouts in the log",
        "return [...document.querySelectorAll('#log tr td:nth-child(5)')].some(td => td.textContent === 'checkout');",
    );
    browser.eval("const row = [...document.querySelectorAll('#log tr')].find(r => r.children[4] && r.children[4].textContent === 'checkout'); row.querySelector('button').click(); return true;");
    let trace = browser.wait_for(
        "a trace",
        "const h = document.querySelector('#trace h2'); return h && h.textContent;",
    );
    assert!(
        trace.as_str().is_some_and(|t| t.contains("committed")),
        "{trace}"
    );
    let tree: Value = browser
        .eval("return [...document.querySelectorAll('#trace li > code')].map(c => c.textContent);");
    let calls: Vec<&str> = tree
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        calls[0].starts_with("Order[") && calls[0].contains(".checkout("),
        "{calls:?}"
    );
    assert!(calls.iter().any(|c| c.starts_with("Stock[")), "{calls:?}");
    assert!(calls.iter().any(|c| c.starts_with("Payment[")), "{calls:?}");
    browser.screenshot(&screens().join("trace.png"));

    // Item 7's stock, stepped back one version with the keyboard.
    browser.click("#t-instances");
    browser.eval("document.getElementById('inst-lambda').value = 'Stock'; document.getElementById('inst-key').value = '7'; return true;");
    browser.click("#inst-form button[type=submit]");
    let newest = browser.wait_for("the history", "const v = document.getElementById('version').textContent; return v.includes(' of ') ? v : null;");
    let stock_now =
        browser.eval("return JSON.parse(document.getElementById('state').textContent).stock;");
    browser.keys("#slider", "\u{E012}");
    let older = browser.wait_for(
        "an older version",
        &format!("const v = document.getElementById('version').textContent; return v !== {newest} ? v : null;"),
    );
    let stock_before =
        browser.eval("return JSON.parse(document.getElementById('state').textContent).stock;");
    assert_eq!(
        stock_before.as_i64().map(|b| b + 5),
        stock_now.as_i64(),
        "one step back is one `add 5` earlier ({newest} → {older})"
    );
    browser.screenshot(&screens().join("history.png"));
    eprintln!("screenshots in {}", screens().display());
}
