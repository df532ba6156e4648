//! The bundled connectors (`log`, `transform`, `reshape`) and the bundled example config,
//! run through the real binary exactly as the README says.

mod support;

use serde_json::json;
use std::path::Path;
use support::{Setup, step};

#[test]
fn the_readme_example_runs_and_prints_its_timeline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = support::flowd()
        .current_dir(root)
        .args([
            "run",
            "config/flows/order-intake.toml",
            "--config",
            "config/flowd.toml",
            "--input",
            "config/examples/order.json",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("ok    normalize  transform  success"), "{text}");
    assert!(
        text.contains("info  orders: order A-1001 from ada@example.com: 2 items, 16.5 EUR"),
        "{text}"
    );
    assert!(text.contains("execution success in"), "{text}");
    assert!(text.contains(r#"response: {"status":200,"headers":{"content-type":"application/json"},"body":{"accepted":"A-1001","total":16.5}}"#), "{text}");
}

#[test]
fn transform_computes_renames_sets_and_removes() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "t",
        &support::one_step(
            "transform",
            r#"{ from = "trigger.body", fields = { name = "user.name", n = "length(tags)", first = "tags[0]", secret = "token", missing = "user.age", through = "tags.x", deep = "_u.v1" }, keep = false, rename = { name = "user" }, set = { source = "test" }, remove = ["secret"] }"#,
            "",
        ),
    );
    let (code, r) = setup.run(
        &flow,
        Some(&json!({"user": {"name": "ada"}, "tags": ["x", "y"], "token": "t0p", "_u": {"v1": [3]}})),
    );
    assert_eq!(code, 0, "{r:#}");
    // Plain field chains follow JMESPath: a missing field, or one asked of an array, is null.
    assert_eq!(
        step(&r, "only")["output"],
        json!({"n": 2, "first": "x", "missing": null, "through": null, "deep": [3], "user": "ada", "source": "test"})
    );

    let flow = setup.flow(
        "s",
        &support::one_step(
            "transform",
            r#"{ select = "trigger.body.items[?price > `10`].sku" }"#,
            "",
        ),
    );
    let (_, r) = setup.run(
        &flow,
        Some(&json!({"items": [{"sku": "a", "price": 5}, {"sku": "b", "price": 20}]})),
    );
    assert_eq!(step(&r, "only")["output"], json!(["b"]));
}

#[test]
fn transform_from_a_field_chain_reads_what_it_names_as_jmespath_would() {
    // A plain `from` chain is read from the input text without parsing the rest of it;
    // what it gives must be what JMESPath gives for the same chain.
    let setup = Setup::new("");
    let body = json!({"aA": 0, "a": {"b": [1, {"c": "d\"e"}], "s": "text"}, "a\u{e9}": 2});
    for (from, want) in [
        ("trigger.body.a.b", json!([1, {"c": "d\"e"}])),
        ("trigger.body.a.missing", json!(null)),
        ("trigger.body.a.s.x", json!(null)),
        ("trigger.body.a.b.c", json!(null)),
        ("trigger.body.aA", json!(0)),
        ("trigger.body.aA.x", json!(null)),
        ("trigger.nothing.x.y", json!(null)),
        ("trigger.body", body.clone()),
    ] {
        let flow = setup.flow(
            "f",
            &support::one_step("transform", &format!("{{ from = \"{from}\" }}"), ""),
        );
        let (code, r) = setup.run(&flow, Some(&body));
        assert_eq!(code, 0, "{from}: {r:#}");
        assert_eq!(step(&r, "only")["output"], want, "{from}");
    }
}

#[test]
fn transform_sums_integers_to_an_integer() {
    // JMESPath's own sum() adds as floating point: [1, 2] would give 3.0, shown as 3.0.
    let setup = Setup::new("");
    let flow = setup.flow(
        "t",
        &support::one_step(
            "transform",
            r#"{ from = "trigger.body", fields = { ints = "sum(ints)", mixed = "sum(mixed)", none = "sum(none)", big = "sum(big)", per_item = "sum(items[].price)" } }"#,
            "",
        ),
    );
    let (code, r) = setup.run(
        &flow,
        Some(&json!({
            "ints": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "mixed": [1, 2.5],
            "none": [],
            "big": [i64::MAX, 1],
            "items": [{"price": 4}, {"price": 12}, {"price": 30}]
        })),
    );
    assert_eq!(code, 0, "{r:#}");
    let out = &step(&r, "only")["output"];
    // Compared as text: 55 and 55.0 are equal as JSON values but not to a user.
    for (key, want) in [("ints", "55"), ("mixed", "3.5"), ("none", "0"), ("per_item", "46")] {
        assert_eq!(out[key].to_string(), want, "{key}: {out}");
    }
    // Past 64 bits the sum stays floating point, as before.
    assert_eq!(out["big"].as_f64(), Some(9.223372036854776e18), "{out}");
}

#[test]
fn transform_keeps_integers_integral_through_abs_floor_and_ceil() {
    // JMESPath's own work in floating point: abs(-5) would be 5.0, floor(1.5) 1.0.
    let setup = Setup::new("");
    let fields = [
        ("abs_int", "abs(`-5`)", "5"),
        ("abs_min", "abs(`-9223372036854775808`)", "9223372036854775808"),
        ("abs_u64", "abs(`18446744073709551615`)", "18446744073709551615"),
        ("abs_float", "abs(`-1.5`)", "1.5"),
        ("abs_whole_float", "abs(`-2.0`)", "2.0"),
        ("floor", "floor(`1.5`)", "1"),
        ("floor_negative", "floor(`-1.5`)", "-2"),
        ("ceil", "ceil(`1.5`)", "2"),
        ("ceil_to_zero", "ceil(`-0.5`)", "0"),
        ("floor_int", "floor(`9007199254740993`)", "9007199254740993"),
        ("floor_huge", "floor(`1e300`)", "1e+300"),
        ("from_input", "floor(price)", "4"),
    ];
    let config = fields
        .iter()
        .map(|(k, e, _)| format!("{k} = \"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let flow = setup.flow(
        "t",
        &support::one_step(
            "transform",
            &format!(r#"{{ from = "trigger.body", fields = {{ {config} }} }}"#),
            "",
        ),
    );
    let (code, r) = setup.run(&flow, Some(&json!({ "price": 4.99 })));
    assert_eq!(code, 0, "{r:#}");
    let out = &step(&r, "only")["output"];
    // Compared as text: 5 and 5.0 are equal as JSON values but not to a user.
    for (key, _, want) in fields {
        assert_eq!(out[key].to_string(), want, "{key}: {out}");
    }
}

#[test]
fn transform_reads_length_and_sum_of_a_chain_as_jmespath_does() {
    // `length(a.b)` and `sum(a[].p)` are read from the document directly; written with
    // spaces, the same expressions go through JMESPath. Every document must give the same
    // value (as text: 3 and 3.0 differ to a user) or the same error in both.
    let setup = Setup::new("");
    let exprs = [
        ("length(a)", "length( a )"),
        ("length(a.b)", "length( a.b )"),
        ("sum(a[].p)", "sum( a[].p )"),
        ("sum(a.b[].p.q)", "sum( a.b[].p.q )"),
    ];
    let mut steps = String::from("[flow]\nname = \"t\"\n\n[trigger.manual]\n");
    for (i, (direct, spaced)) in exprs.iter().enumerate() {
        for (form, text) in [("direct", direct), ("spaced", spaced)] {
            steps += &format!(
                "\n[[steps]]\nname = \"{form}{i}\"\nconnector = \"transform\"\non_error = \"continue\"\n\
                 config = {{ from = \"trigger.body\", fields = {{ v = \"{text}\" }} }}\n"
            );
        }
    }
    let flow = setup.flow("t", &steps);
    let docs = [
        json!({"a": "h\u{e9}llo \u{1f600}"}),
        json!({"a": {"x": 1, "y": 2}, "b": 0}),
        json!({"a": []}),
        json!({"a": [1, [2, {"p": 3}], {"p": 4}, {"p": null}, {"q": 1}, {"p": 2.5}, "s"]}),
        json!({"a": [{"p": 1}, {"p": 2}, {"p": -7}]}),
        json!({"a": [[{"p": 1}], [{"p": 2}, [{"p": 5}]]]}),
        json!({"a": [{"p": i64::MAX}, {"p": 1}]}),
        json!({"a": [{"p": u64::MAX}]}),
        json!({"a": [{"p": 1e308}, {"p": 1e308}]}),
        json!({"a": [{"p": "4"}]}),
        json!({"a": [{"p": true}]}),
        json!({"a": 5}),
        json!({"a": null}),
        json!({"a": true}),
        json!({}),
        json!({"a": {"b": [{"p": {"q": 2}}, {"p": {"q": 0.5}}, {"p": 3}, [{"p": {"q": 1}}]]}}),
        json!({"a": {"b": "text"}}),
        json!({"a": {"b": {"p": {"q": 1}}}}),
    ];
    for doc in docs {
        let (_, r) = setup.run(&flow, Some(&doc));
        for (i, (direct, spaced)) in exprs.iter().enumerate() {
            let (d, s) = (step(&r, &format!("direct{i}")), step(&r, &format!("spaced{i}")));
            assert_eq!(d["status"], s["status"], "{direct} on {doc}: {d:#} against {s:#}");
            if d["status"] == "success" {
                assert_eq!(d["output"].to_string(), s["output"].to_string(), "{direct} on {doc}");
                // Read directly, not by JMESPath: less work in the guest.
                let fuel = |s: &serde_json::Value| s["fuel_used"].as_u64().unwrap();
                assert!(
                    fuel(d) < fuel(s),
                    "{direct} on {doc}: fuel {} against {}",
                    fuel(d),
                    fuel(s)
                );
            } else {
                let message =
                    |e: &serde_json::Value, text: &str| e["error"]["message"].as_str().unwrap().replace(text, "EXPR");
                assert_eq!(
                    (&d["error"]["code"], message(d, direct)),
                    (&s["error"]["code"], message(s, spaced)),
                    "{direct} on {doc}"
                );
            }
        }
    }
}

#[test]
fn transform_gives_from_the_input_text_what_it_gives_from_parsed_values() {
    // With a plain `from` chain and field chains, the document and what the fields pick
    // pass through as the input's text; `from = "trigger.body | @"` (no chain) parses the
    // document into values and writes them out (JMESPath sorts an object's keys on the
    // way). Both must read back as the same JSON, or fail with the same error.
    let setup = Setup::new("");
    let specs = [
        r#""#,
        r#"fields = { a = "a", c = "b.c", n = "length(b.c)", m = "b.missing" }"#,
        r#"keep = true, fields = { a = "d", z = "a", s = "sum(items[].p)" }"#,
        r#"rename = { a = "b", d = "e" }, set = { a = "x", f = [1, { g = 2 }] }, remove = ["items"]"#,
        r#"keep = true, fields = { c = "b.c" }, rename = { c = "a" }, remove = ["d"]"#,
        r#"select = "b""#,
        r#"select = "b", set = { q = 1 }"#,
        r#"select = "b.c", remove = ["x"]"#,
        r#"set = { "k\"ey" = true }"#,
    ];
    let mut flow = String::from("[flow]\nname = \"t\"\n\n[trigger.manual]\n");
    for (i, spec) in specs.iter().enumerate() {
        for (form, from) in [("text", "trigger.body"), ("value", "trigger.body | @")] {
            let sep = if spec.is_empty() { "" } else { ", " };
            flow += &format!(
                "\n[[steps]]\nname = \"{form}{i}\"\nconnector = \"transform\"\non_error = \"continue\"\n\
                 config = {{ from = \"{from}\"{sep}{spec} }}\n"
            );
        }
    }
    let flow = setup.flow("t", &flow);
    // As text, not values: repeated keys, escapes and number forms reach the connector.
    let bodies = [
        r#"{"a": 1, "b": {"c": [1, 2], "x": 0}, "d": "caf\u00e9 \"q\"", "a": 2, "items": [{"p": 1}, {"p": 2}]}"#,
        r#"{"d": 1e2, "b": {"c": "text", "c": "t\u00e9xt"}, "items": [{"p": 1.5}, {"p": 2}], "k\"ey": 0, "\u00e9": -0.0}"#,
        r#"{"b": 5, "items": [], "z": null, "items": [{"p": 7}]}"#,
        r#"{}"#,
        // Past 16 members the keys are found through an index, kept through renames and
        // removals; a key repeated past that point keeps its first place.
        r#"{"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7, "k8": 8, "k9": 9, "k10": 10, "k11": 11, "k12": 12, "k13": 13, "k14": 14, "k15": 15, "k16": 16, "a": 1, "k3": "again", "b": {"c": [1]}, "d": "x", "items": [{"p": 1}], "a": 3, "e": 5}"#,
        r#"[1, {"a": 2}]"#,
        r#""text""#,
        r#"null"#,
        r#"12.50"#,
    ];
    for body in bodies {
        let (_, r) = setup.run_text(&flow, body);
        for (i, spec) in specs.iter().enumerate() {
            let (t, v) = (step(&r, &format!("text{i}")), step(&r, &format!("value{i}")));
            let what = format!("`{spec}` on {body}");
            assert_eq!(t["status"], v["status"], "{what}: {t:#} against {v:#}");
            assert_eq!(t["output"], v["output"], "{what}");
            assert_eq!(t["error"], v["error"], "{what}");
        }
        if body.starts_with(r#"{"k0""#) {
            // `keep` adds `c` at the end, renaming it onto `a` replaces `a` in its place.
            let ks: Vec<String> = (0..17)
                .map(|i| {
                    if i == 3 {
                        r#""k3":"again""#.to_string()
                    } else {
                        format!("\"k{i}\":{i}")
                    }
                })
                .collect();
            assert_eq!(
                step(&r, "text4")["output"].to_string(),
                format!(
                    r#"{{{},"a":[1],"b":{{"c":[1]}},"items":[{{"p":1}}],"e":5}}"#,
                    ks.join(",")
                )
            );
        }
        if body.starts_with(r#"{"a": 1"#) {
            // The first place of a repeated key, its last value; `keep`'s fields replace
            // in place and add at the end; a key renamed to one that is there replaces its
            // value, to one that is not goes to the end.
            assert_eq!(
                step(&r, "text2")["output"].to_string(),
                r#"{"a":"café \"q\"","b":{"c":[1,2],"x":0},"d":"café \"q\"","items":[{"p":1},{"p":2}],"z":2,"s":3}"#
            );
            assert_eq!(
                step(&r, "text3")["output"].to_string(),
                r#"{"b":2,"e":"café \"q\"","a":"x","f":[1,{"g":2}]}"#
            );
        }
    }
}

#[test]
fn transform_calls_each_builtin_function_wherever_an_expression_names_it() {
    // Each expression gets only the functions it calls: every built-in, at every place an
    // expression can hold a call (arguments, exprefs, filters, hashes, lists, negation,
    // flattening), must still be found, and an unknown name still fails when called.
    let setup = Setup::new("");
    let fields = [
        ("by_price", "sort_by(items, &price)[].sku"),
        ("top", "max_by(items, &price).sku"),
        ("minby", "min_by(items, &qty).sku"),
        ("cheap", "items[?to_number(to_string(price)) < `10`].sku"),
        ("joined", "join(',', map(&sku, items))"),
        (
            "nested",
            "{n: length(keys(@)), s: starts_with(name, 'A') && !contains(name, 'z'), t: type(not_null(missing, name))}",
        ),
        ("flat", "sum([items[].qty, [`1`]][])"),
        ("rev", "reverse(sort(values({a: `3`, b: `1`})))"),
        ("rounding", "[abs(`-2`), ceil(`1.2`), floor(`1.8`)]"),
        ("avg", "avg(items[].price)"),
        ("range", "[min(items[].price), max(items[].price)]"),
        ("merged", "merge(`{\\\"a\\\":1}`, `{\\\"b\\\":2}`)"),
        ("arr", "to_array(name)"),
        ("ends", "ends_with(name, 'e')"),
    ];
    let table: Vec<String> = fields.iter().map(|(k, e)| format!("{k} = \"{e}\"")).collect();
    let flow = setup.flow(
        "t",
        &support::one_step(
            "transform",
            &format!("{{ from = \"trigger.body\", fields = {{ {} }} }}", table.join(", ")),
            "",
        ),
    );
    let body = json!({"name": "Ada Lovelace", "items": [
        {"sku": "tea", "qty": 2, "price": 4}, {"sku": "cup", "qty": 1, "price": 12}, {"sku": "pot", "qty": 3, "price": 30}
    ]});
    let (code, r) = setup.run(&flow, Some(&body));
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        step(&r, "only")["output"].to_string(),
        r#"{"by_price":["tea","cup","pot"],"top":"pot","minby":"cup","cheap":["tea"],"joined":"tea,cup,pot","nested":{"n":2,"s":true,"t":"string"},"flat":7,"rev":[3,1],"rounding":[2,2,1],"avg":15.333333333333334,"range":[4,30],"merged":{"a":1,"b":2},"arr":["Ada Lovelace"],"ends":true}"#
    );

    let flow = setup.flow(
        "u",
        &support::one_step(
            "transform",
            r#"{ from = "trigger.body", select = "frobnicate(name)" }"#,
            "",
        ),
    );
    let (code, r) = setup.run(&flow, Some(&body));
    assert_eq!(code, 1, "{r:#}");
    let e = &step(&r, "only")["error"];
    assert_eq!((&e["kind"], &e["code"]), (&json!("connector"), &json!("expression")));
    assert_eq!(
        e["message"],
        "evaluating \"frobnicate(name)\": Runtime error: Call to undefined function frobnicate"
    );
}

#[test]
fn transform_works_on_an_input_far_larger_than_its_bump_region() {
    // The bundled guests bump small allocations from a 64 KiB region and take the rest
    // from the system allocator: a document of nearly 1 MB (the payload limit) grows vectors and maps across the two.
    let setup = Setup::new("");
    let flow = setup.flow(
        "big",
        &support::one_step(
            "transform",
            r#"{ from = "trigger.body", keep = true, fields = { n = "length(items)", total = "sum(items[].price)", last = "items[-1].sku", cheap = "length(items[?price < `100`])" }, remove = ["pad"] }"#,
            "",
        ),
    );
    let items: Vec<_> = (0..15_000)
        .map(|i| json!({"sku": format!("sku-{i}-\u{e9}\"q\""), "price": i}))
        .collect();
    let (code, r) = setup.run(&flow, Some(&json!({"items": items, "pad": "x".repeat(200_000)})));
    assert_eq!(code, 0, "{r:#}");
    let out = &step(&r, "only")["output"];
    assert_eq!(out["n"], json!(15_000));
    assert_eq!(out["total"].to_string(), (0..15_000u64).sum::<u64>().to_string());
    assert_eq!(out["last"], json!("sku-14999-\u{e9}\"q\""));
    assert_eq!(out["cheap"], json!(100));
    assert_eq!(out["items"].as_array().map(Vec::len), Some(15_000));
    assert_eq!(
        out["items"][12_345],
        json!({"sku": "sku-12345-\u{e9}\"q\"", "price": 12_345})
    );
    assert!(
        out.get("pad").is_none(),
        "{}",
        out.as_object().map(|o| o.len()).unwrap_or(0)
    );
}

#[test]
fn transform_keep_adds_fields_each_computed_from_the_document_as_it_came() {
    // A kept key given a new value stays where it was, new keys follow in the order
    // written, and every expression reads the document before any field was set.
    let setup = Setup::new("");
    let flow = setup.flow(
        "k",
        &support::one_step(
            "transform",
            r#"{ from = "trigger.body", keep = true, fields = { b = "a", a = "length(c)", d = "b", e = "a" } }"#,
            "",
        ),
    );
    let (code, r) = setup.run(&flow, Some(&json!({"a": 1, "b": 2, "c": [1, 2, 3]})));
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(
        step(&r, "only")["output"].to_string(),
        r#"{"a":3,"b":1,"c":[1,2,3],"d":2,"e":1}"#
    );

    let flow = setup.flow(
        "n",
        &support::one_step(
            "transform",
            r#"{ from = "trigger.body", keep = true, fields = { x = "nope(a)" } }"#,
            "",
        ),
    );
    let (code, r) = setup.run(&flow, Some(&json!([1])));
    assert_eq!(code, 1, "{r:#}");
    // The document's shape is checked before any expression runs.
    assert_eq!(
        step(&r, "only")["error"]["message"],
        "`keep` needs the document to be an object, but it is an array"
    );
}

#[test]
fn transform_says_when_a_sum_or_average_is_past_the_largest_double_and_the_average_of_nothing_is_null() {
    // JMESPath itself says "Parse error: Expected to be a valid number".
    let setup = Setup::new("");
    let input = json!({ "items": [{"price": 1e308}, {"price": 1e308}], "nums": [1e308, 1e308, -1.0] });
    for expr in ["sum(items[].price)", "sum(nums)", "avg(nums)", "sum(nums[?@ > `0`])"] {
        let config = format!(r#"{{ from = "trigger.body", fields = {{ x = "{expr}" }} }}"#);
        let flow = setup.flow("t", &support::one_step("transform", &config, ""));
        let (code, r) = setup.run(&flow, Some(&input));
        assert_eq!(code, 1, "{expr}: {r:#}");
        let e = &step(&r, "only")["error"];
        assert_eq!(
            (&e["kind"], &e["code"]),
            (&json!("connector"), &json!("expression")),
            "{expr}"
        );
        assert_eq!(
            e["message"],
            format!("evaluating {expr:?}: the result is past the largest number a double holds (±1.8e308)"),
        );
    }
    // The average of nothing is null, as the JMESPath specification says.
    let flow = setup.flow(
        "t",
        &support::one_step(
            "transform",
            r#"{ from = "trigger.body", fields = { none = "avg(none)", some = "avg(some)" } }"#,
            "",
        ),
    );
    let (code, r) = setup.run(&flow, Some(&json!({ "none": [], "some": [1, 2] })));
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(step(&r, "only")["output"], json!({ "none": null, "some": 1.5 }));
}

#[test]
fn transform_errors_at_run_time_are_connector_errors() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "t",
        &support::one_step("transform", r#"{ select = "trigger.body", set = { a = 1 } }"#, ""),
    );
    let (code, r) = setup.run(&flow, Some(&json!([1, 2])));
    assert_eq!(code, 1);
    let e = &step(&r, "only")["error"];
    assert_eq!(e["kind"], "connector");
    assert_eq!(e["code"], "expression");
    assert_eq!(
        e["message"],
        "`rename`, `set` and `remove` need an object, but the output is an array"
    );
}

#[test]
fn transform_config_problems_each_name_their_key() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "t",
        &support::one_step(
            "transform",
            r#"{ from = "trigger.[", fields = { a = "b", "odd key" = "length(", n = 5 }, rename = { x = "" }, remove = ["k", 3], colour = 1 }"#,
            "",
        ),
    );
    let stderr = setup.refused(&flow);
    for expected in [
        "config.from: invalid JMESPath expression \"trigger.[\"",
        "config.fields.odd key: invalid JMESPath expression \"length(\"",
        "config.fields.n: expected a JMESPath expression (a string), found a number",
        "config.rename.x: expected the new key name (a non-empty string), found a string",
        "config.remove.1: expected a key name (a string), found a number",
        "config.colour: unknown key",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("config.fields.a"),
        "a good field is no problem:\n{stderr}"
    );
}

#[test]
fn log_writes_records_with_its_level_and_category() {
    let setup = Setup::new("");
    let flow = setup.flow(
        "t",
        &support::one_step(
            "log",
            r#"{ level = "warn", category = "billing", message = "late: {{ trigger.body.id }}" }"#,
            "",
        ),
    );
    let (code, r) = setup.run(&flow, Some(&json!({"id": 7})));
    assert_eq!(code, 0);
    let s = step(&r, "only");
    let log = &s["tries"][0]["logs"][0];
    assert_eq!(
        (log["level"].as_str(), log["category"].as_str(), log["message"].as_str()),
        (Some("warn"), Some("billing"), Some("late: 7"))
    );
    assert!(log["time"].as_str().unwrap().ends_with('Z'));
}

/// A webhook flow whose trigger connector is `reshape` with `config`, then an echo step.
fn reshape_flow(setup: &Setup, config: &str) -> std::path::PathBuf {
    setup.flow(
        "hook",
        &format!(
            r#"
[flow]
name = "hook"
[trigger.http]
path = "/hook"
[trigger]
connector = "reshape"
config = {config}

[[steps]]
name = "see"
connector = "echo"
"#
        ),
    )
}

const PAID_ONLY: &str = r#"{ filter = "body.event == 'paid'", fields = { id = "body.id", via = "method" } }"#;

#[test]
fn a_plain_field_filter_follows_jmespath_truthiness() {
    // A filter that is a plain chain of field names is read off the value, not compiled:
    // false, null, empty strings, arrays and objects (and a missing field) drop the event.
    let setup = Setup::new("");
    let flow = reshape_flow(&setup, r#"{ filter = "body.keep" }"#);
    for (keep, kept) in [
        (json!(true), true),
        (json!(0), true),
        (json!("x"), true),
        (json!([0]), true),
        (json!({"a": 1}), true),
        (json!(false), false),
        (json!(null), false),
        (json!(""), false),
        (json!([]), false),
        (json!({}), false),
    ] {
        let (code, r) = setup.run(&flow, Some(&json!({"keep": keep})));
        assert_eq!(code, 0, "{keep}: {r:#}");
        assert_eq!(
            r["trigger"]["dropped"].as_bool().unwrap_or(false),
            !kept,
            "{keep}: {r:#}"
        );
    }
    let (_, r) = setup.run(&flow, Some(&json!({"other": 1})));
    assert_eq!(r["trigger"]["dropped"], true, "a missing field is null: {r:#}");
}

#[test]
fn reshape_filters_and_reshapes_the_event() {
    let setup = Setup::new("");
    let flow = reshape_flow(&setup, PAID_ONLY);
    let (code, r) = setup.run(&flow, Some(&json!({"event": "paid", "id": "p1"})));
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["trigger"]["payload"], json!({"id": "p1", "via": "POST"}));
    assert_eq!(r["trigger"]["connector"]["name"], "reshape");
    assert_eq!(
        step(&r, "see")["output"]["input"]["trigger"],
        json!({"id": "p1", "via": "POST"})
    );

    let (code, r) = setup.run(&flow, Some(&json!({"event": "refunded", "id": "p2"})));
    assert_eq!(code, 0, "a dropped event is not a failure");
    assert_eq!(r["trigger"]["dropped"], true);
    assert_eq!(step(&r, "see")["status"], "skipped");
    assert_eq!(
        r["trigger"]["call"]["logs"][0]["message"],
        "filter `body.event == 'paid'` is false for the event"
    );
    assert_eq!(
        r["trigger"]["note"], "filter `body.event == 'paid'` is false for the event",
        "the connector's last record is the reason"
    );
}
