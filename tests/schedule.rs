//! Schedule triggers in the real daemon with per-second cron expressions: firing, catch-up
//! after a stop for each policy, and the three overlap policies.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::{Daemon, Setup, list_executions, secs, show as detail};

fn every_second(name: &str, extra: &str, steps: &str) -> String {
    format!(
        "[flow]\nname = \"{name}\"\n[trigger.schedule]\ncron = \"* * * * * *\"\ntimezone = \"Europe/Berlin\"\n{extra}\n{steps}"
    )
}

const ECHO: &str = "[[steps]]\nname = \"a\"\nconnector = \"echo\"\n";

#[test]
fn fires_every_second_with_its_schedule_in_the_payload() {
    let setup = Setup::new("");
    setup.flow("tick", &every_second("tick", "", ECHO));
    let d = Daemon::start(&setup);
    std::thread::sleep(Duration::from_millis(2600));
    d.stop();
    let runs = list_executions(&setup, Some("tick"));
    assert!(runs.len() >= 2, "{} runs", runs.len());
    let mut previous = 0.0;
    for e in &runs {
        assert_eq!(e["trigger_kind"], "schedule");
        assert_eq!(e["status"], "success");
        let trigger = &detail(&setup, e["job_id"].as_str().unwrap())["trigger"];
        let at = secs(&trigger["scheduled_at"]);
        assert_eq!(at.fract(), 0.0, "fires on whole seconds: {trigger}");
        assert!(at > previous, "one fire per second");
        previous = at;
        assert!(secs(&trigger["fired_at"]) - at < 0.5, "fired on time: {trigger}");
    }
}

#[test]
fn missed_fire_times_are_caught_up_per_policy() {
    let setup = Setup::new("");
    for policy in ["skip", "one", "all"] {
        setup.flow(policy, &every_second(policy, &format!("catch_up = \"{policy}\""), ECHO));
    }
    let d = Daemon::start(&setup);
    std::thread::sleep(Duration::from_millis(1500));
    d.stop();
    // The last fire time of the first run, per flow.
    let scheduled = |e: &Value| {
        let t = &detail(&setup, e["job_id"].as_str().unwrap())["trigger"];
        secs(&t["scheduled_at"])
    };
    let before: Vec<f64> = ["skip", "one", "all"]
        .iter()
        .map(|f| {
            list_executions(&setup, Some(f))
                .iter()
                .map(scheduled)
                .fold(0.0, f64::max)
        })
        .collect();
    // Down for a few seconds: several fire times are missed.
    std::thread::sleep(Duration::from_millis(3200));
    let restart = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let d = Daemon::start(&setup);
    std::thread::sleep(Duration::from_millis(600));
    let log = d.log.lock().unwrap().clone();
    d.stop();

    // Nothing fired for a time while the daemon was down.
    let while_down = |i: usize, flow: &str| {
        list_executions(&setup, Some(flow))
            .iter()
            .map(scheduled)
            .filter(|t| *t > before[i] && *t < restart)
            .count()
    };
    assert_eq!(while_down(0, "skip"), 0);
    // The fire times the daemon says it caught up (the last ones before its scheduler
    // started, which is after `restart`), each stored as an execution.
    let caught_up = |i: usize, flow: &str| -> usize {
        let stored: Vec<f64> = list_executions(&setup, Some(flow)).iter().map(scheduled).collect();
        let times: Vec<f64> = log
            .lines()
            .filter(|l| l.contains("missed while flowd was down"))
            .filter(|l| l.split_whitespace().any(|w| w == format!("flow={flow}")))
            .map(|l| {
                let at = l.split_whitespace().find_map(|w| w.strip_prefix("at=")).unwrap();
                secs(&Value::String(at.to_string()))
            })
            .collect();
        for t in &times {
            assert!(
                *t > before[i],
                "{flow}: caught up {t}, before the last fire {}",
                before[i]
            );
            assert!(
                stored.contains(t),
                "{flow}: caught-up fire {t} is not stored: {stored:?}"
            );
        }
        times.len()
    };
    assert_eq!(caught_up(0, "skip"), 0);
    assert_eq!(caught_up(1, "one"), 1, "{log}");
    let all = caught_up(2, "all");
    assert!((3..=5).contains(&all), "{all} caught up");
}

/// Each run pauses 1.3 s, so fires a second apart find the previous run still going.
#[test]
fn overlap_policies() {
    let setup = Setup::with_server("", "shutdown_grace = \"20s\"");
    let nap = "[[steps]]\nname = \"nap\"\npause = \"1300ms\"\n";
    for policy in ["allow", "skip", "queue"] {
        setup.flow(policy, &every_second(policy, &format!("overlap = \"{policy}\""), nap));
    }
    let d = Daemon::start(&setup);
    std::thread::sleep(Duration::from_millis(3500));
    d.stop();

    // (start, end) of each finished run's pause step, in seconds, and how many runs
    // (queued ones not started before shutdown included) each policy kept.
    let spans = |flow: &str| -> (Vec<(f64, f64)>, usize) {
        let all = list_executions(&setup, Some(flow));
        let spans = all
            .iter()
            .filter(|e| e["status"] == "success")
            .map(|e| {
                let d = detail(&setup, e["job_id"].as_str().unwrap());
                let s = &d["steps"][0];
                (secs(&s["started_at"]), secs(&s["finished_at"]))
            })
            .collect();
        (spans, all.len())
    };
    let overlapping = |spans: &[(f64, f64)]| spans.windows(2).filter(|w| w[1].0 < w[0].1).count();

    let (allow, allow_kept) = spans("allow");
    assert!(allow.len() >= 3, "{allow:?}");
    assert!(overlapping(&allow) >= 2, "allow runs side by side: {allow:?}");

    let (skip, skip_kept) = spans("skip");
    assert_eq!(overlapping(&skip), 0, "{skip:?}");
    assert!(skip_kept < allow_kept, "skip drops fires: {skip_kept} vs {allow_kept}");

    let (queue, queue_kept) = spans("queue");
    assert!(queue.len() >= 2, "{queue:?}");
    assert_eq!(overlapping(&queue), 0, "queue runs one after another: {queue:?}");
    assert!(
        queue_kept > skip_kept,
        "queue keeps every fire: {queue_kept} vs {skip_kept}"
    );
}

/// The daemon's next fire times (`GET /v1/schedules`) of crontab-style expressions: the
/// weekday numbers mean what crontab means (1 Monday, 0 and 7 Sunday), five fields fire at
/// second 0, and restricting both day fields fires on either.
#[test]
fn cron_weekdays_are_numbered_as_in_crontab() {
    use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
    use support::admin::{TOKENS, VIEWER, start};
    let setup = Setup::with_server("", TOKENS);
    let flow = |name: &str, cron: &str| {
        format!("[flow]\nname = \"{name}\"\n[trigger.schedule]\ncron = \"{cron}\"\ntimezone = \"UTC\"\n{ECHO}")
    };
    setup.flow("weekdays", &flow("weekdays", "0 9 * * 1-5"));
    setup.flow("weekdays6", &flow("weekdays6", "0 0 9 * * 1-5"));
    setup.flow("sundays", &flow("sundays", "30 8 * * 7"));
    setup.flow("either", &flow("either", "0 12 13 * 5"));
    let d = start(&setup);
    let r = d.admin("GET", "/v1/schedules?next=12", Some(VIEWER), b"");
    assert_eq!(r.status, 200);
    let schedules = r.json();
    let fires = |name: &str| -> Vec<DateTime<Utc>> {
        let s = schedules["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["flow"] == name)
            .unwrap_or_else(|| panic!("no schedule {name}: {schedules}"));
        s["next_fires"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().parse().unwrap())
            .collect()
    };
    for name in ["weekdays", "weekdays6"] {
        let f = fires(name);
        assert_eq!(f.len(), 12);
        for t in &f {
            assert!(
                !matches!(t.weekday(), Weekday::Sat | Weekday::Sun),
                "{name} fires on {t}"
            );
            assert_eq!((t.hour(), t.minute(), t.second()), (9, 0, 0), "{name} fires at {t}");
        }
        let days: std::collections::BTreeSet<_> = f.iter().map(|t| t.weekday().num_days_from_monday()).collect();
        assert_eq!(days.len(), 5, "{name}: Monday to Friday");
    }
    for t in fires("sundays") {
        assert_eq!((t.weekday(), t.hour(), t.minute()), (Weekday::Sun, 8, 30));
    }
    for t in fires("either") {
        assert!(t.day() == 13 || t.weekday() == Weekday::Fri, "either fires on {t}");
    }
    d.stop();
}
