//! The app's tests, on the in-process harness.
#![allow(missing_docs)]

use stateful_runtime::testing::TestApp;
use template::greeter::Greeter;

#[test]
fn greetings_are_counted_per_name() {
    let t = TestApp::new(template::greeter::app());
    assert_eq!(
        t.call::<Greeter>("ann").greet().wait(),
        Ok("hello ann, #1".to_owned())
    );
    t.call::<Greeter>("ann").greet().wait().expect("greets");
    assert_eq!(t.call::<Greeter>("ann").count().wait(), Ok(2));
    assert_eq!(t.call::<Greeter>("bob").count().wait(), Ok(0));
}
