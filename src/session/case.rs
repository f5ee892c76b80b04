//! What every detector that runs sessions shares, whether its server is selectlab's own room
//! with a zoo bug on (`zoo::detect`) or another program (`check::sim`): the judgement that
//! every step settled, the smaller cases a failing case's steps give, and the shrink, which
//! keeps a failure's [`Symptom`] while it cuts the case down.

use nix::errno::Errno;

use super::symptom::{Failure, Symptom};
use super::{Outcome, Step, properties};

/// Most sessions one shrink judges.
pub const MAX_SHRINK_RUNS: usize = 120;

/// A failing case that a shrink can cut down.
pub trait Shrink: Clone {
    /// Smaller cases that may still fail the same way, the boldest cuts first.
    fn smaller(&self) -> Vec<Self>;
}

/// Shrinks a case that failed with `symptom`: takes the first smaller case that `judge` still
/// fails with the same kind of symptom, again and again, within [`MAX_SHRINK_RUNS`] judged
/// sessions. A smaller case that fails another way proves another fault, and is passed over.
/// Deterministic: the same case shrinks the same way.
pub fn shrink<C: Shrink>(
    mut case: C,
    symptom: Symptom,
    mut judge: impl FnMut(&C) -> Result<(), Failure>,
) -> C {
    let mut runs = 0;
    'smaller: loop {
        for candidate in case.smaller() {
            if runs == MAX_SHRINK_RUNS {
                break 'smaller;
            }
            runs += 1;
            if judge(&candidate).is_err_and(|f| f.symptom == symptom) {
                case = candidate;
                continue 'smaller;
            }
        }
        break;
    }
    case
}

/// Smaller lists of steps: runs of steps left out (halves first, then quarters, down to
/// single steps), then each payload cut to its first half of lines.
pub fn smaller_steps(steps: &[Step]) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    let n = steps.len();
    let mut run = n / 2;
    while run >= 1 {
        for start in (0..n).step_by(run) {
            let mut fewer = steps.to_vec();
            fewer.drain(start..(start + run).min(n));
            out.push(fewer);
        }
        run /= 2;
    }
    for (i, step) in steps.iter().enumerate() {
        if let Some(half) = halved(step) {
            let mut cut = steps.to_vec();
            cut[i] = half;
            out.push(cut);
        }
    }
    out
}

/// A step with its payload cut to its first half of lines (`None`: nothing to halve).
pub fn halved(step: &Step) -> Option<Step> {
    let cut = |b: &Vec<u8>| {
        let lines = b.iter().filter(|&&c| c == b'\n').count();
        (lines >= 2).then(|| {
            let end = (b.iter().enumerate())
                .filter(|(_, c)| **c == b'\n')
                .nth(lines / 2 - 1)
                .map_or(b.len(), |(i, _)| i + 1);
            b[..end].to_vec()
        })
    };
    match step {
        Step::Raw(n, b) => cut(b).map(|b| Step::Raw(*n, b)),
        Step::Drip(n, b) => cut(b).map(|b| Step::Drip(*n, b)),
        _ => None,
    }
}

/// Judges how a session's steps ran ([`Session::run_all`](super::Session::run_all)) to the
/// outcome `o`: a step that did not settle is the server's trouble if it had one (a flood
/// stops the session so), else a busy loop or a hang.
pub fn settled(
    steps: &[Step],
    result: Result<(), (usize, Errno)>,
    o: &Outcome,
) -> Result<(), Failure> {
    let Err((step, e)) = result else {
        return Ok(());
    };
    properties::could_go_on(o)?;
    let at = steps
        .get(step)
        .map_or("the end".into(), ToString::to_string);
    let what = format!(
        "step {} ({at}) did not settle ({e}): a busy loop or a hang",
        step + 1
    );
    Err(Failure::new(Symptom::Hang, what).with_transcript(&o.transcript))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::schedules::say;

    #[derive(Debug, Clone, PartialEq)]
    struct Steps(Vec<Step>);

    impl Shrink for Steps {
        fn smaller(&self) -> Vec<Steps> {
            smaller_steps(&self.0).into_iter().map(Steps).collect()
        }
    }

    /// A judge that fails as `Lost` while step `lost` is there, and as `Extra` while `extra`
    /// is (without `lost`).
    fn judge(lost: Step, extra: Step) -> impl FnMut(&Steps) -> Result<(), Failure> {
        move |c: &Steps| {
            if c.0.contains(&lost) {
                Err(Failure::new(Symptom::Lost, "lost"))
            } else if c.0.contains(&extra) {
                Err(Failure::new(Symptom::Extra, "extra"))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_shrink_keeps_the_symptom_it_was_given() {
        let steps: Vec<Step> = (0..8).map(|n| say(n, "x")).collect();
        let (lost, extra) = (steps[5].clone(), steps[2].clone());
        let shrunk = shrink(Steps(steps), Symptom::Lost, judge(lost.clone(), extra));
        assert_eq!(shrunk, Steps(vec![lost]));
    }

    #[test]
    fn a_shrink_passes_over_cases_that_fail_another_way() {
        let steps: Vec<Step> = (0..8).map(|n| say(n, "x")).collect();
        let (lost, extra) = (steps[5].clone(), steps[2].clone());
        // Shrinking the `Extra` failure must drop the step that makes it `Lost`, never keep it.
        let shrunk = shrink(Steps(steps), Symptom::Extra, judge(lost, extra.clone()));
        assert_eq!(shrunk, Steps(vec![extra]));
    }

    /// Found by cargo-mutants (the bound counted nothing): a shrink judges at most
    /// MAX_SHRINK_RUNS sessions, however many smaller cases there are.
    #[test]
    fn a_shrink_judges_at_most_its_bound_of_sessions() {
        let steps: Vec<Step> = (0..200).map(|n| say(n % 4, "x")).collect();
        let mut judged = 0;
        let shrunk = shrink(Steps(steps.clone()), Symptom::Lost, |_: &Steps| {
            judged += 1;
            Ok(())
        });
        assert_eq!(judged, MAX_SHRINK_RUNS);
        assert_eq!(shrunk, Steps(steps), "nothing smaller failed");
    }

    /// Found by cargo-mutants: the boldest cuts come first, halves, then single steps.
    #[test]
    fn smaller_steps_leave_out_halves_then_single_steps() {
        let steps: Vec<Step> = (0..4).map(|n| say(n, "x")).collect();
        let kept =
            |which: &[usize]| -> Vec<Step> { which.iter().map(|&i| steps[i].clone()).collect() };
        let want = [
            kept(&[2, 3]),
            kept(&[0, 1]),
            kept(&[1, 2, 3]),
            kept(&[0, 2, 3]),
            kept(&[0, 1, 3]),
            kept(&[0, 1, 2]),
        ];
        assert_eq!(smaller_steps(&steps), want);
    }

    #[test]
    fn a_payload_halves_at_a_line_end_and_a_single_line_does_not() {
        let four = Step::Raw(0, b"a\nbb\nc\nd\n".to_vec());
        assert_eq!(halved(&four), Some(Step::Raw(0, b"a\nbb\n".to_vec())));
        assert_eq!(halved(&Step::Raw(0, b"one line\n".to_vec())), None);
        let drip = Step::Drip(1, b"a\nb\n".to_vec());
        assert_eq!(halved(&drip), Some(Step::Drip(1, b"a\n".to_vec())));
    }

    #[test]
    fn a_step_that_did_not_settle_is_named_with_its_number() {
        let steps = vec![say(0, "hi")];
        let mut o = Outcome::of_clients(Vec::new());
        o.transcript = "t".into();
        let f = settled(&steps, Err((0, Errno::EBUSY)), &o).expect_err("unsettled");
        assert_eq!(f.symptom, Symptom::Hang);
        assert!(f.what.starts_with("step 1 (c1 says \"hi\")"), "{}", f.what);
        assert_eq!(f.transcript, "t");
        let end = settled(&steps, Err((1, Errno::EBUSY)), &o).expect_err("unsettled");
        assert!(end.what.starts_with("step 2 (the end)"), "{}", end.what);
        assert_eq!(settled(&steps, Ok(()), &o), Ok(()));
        o.server_trouble = Some(Failure::new(Symptom::Extra, "it floods"));
        let why = settled(&steps, Err((0, Errno::ENOBUFS)), &o).expect_err("a flood");
        assert_eq!(why.symptom, Symptom::Extra);
        assert_eq!(why.what, "the server could not go on: it floods");
    }
}
