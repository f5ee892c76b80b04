use selectlab::chat::session::{Session, SessionConfig, Step};
use selectlab::zoo::{Bug, Bugs};
#[test]
fn probe() {
    let steps = vec![
        Step::Join(0),
        Step::Join(1),
        Step::Say(0, b"hi".to_vec()),
        Step::Say(1, b"yo".to_vec()),
        Step::Reset(1),
        Step::Say(0, b"alone".to_vec()),
    ];
    let o = Session::new(SessionConfig {
        bugs: Bugs::only(Bug::EagainAsFailure),
        kernel_calls: true,
        ..SessionConfig::default()
    })
    .unwrap()
    .run(&steps)
    .unwrap();
    println!("{}", o.transcript);
}
