//! `parent`: a work chain that launches `add` children and awaits them into its context
//! (plumpy S42; the 200-children benchmark; failures of children).
use damson_guest::prelude::*;

#[derive(Default)]
struct Parent;

impl Process for Parent {
    fn define(spec: &mut Spec<Self>) {
        spec.input("count")
            .valid_type(Type::Int)
            .default(2)
            .help("How many children to launch");
        spec.input("mode")
            .valid_type(Type::Str)
            .default("many")
            .help("many | pair | last | fail | inspect | hailstones");
        spec.output("total").valid_type(Type::Int).required(false);
        spec.output("children")
            .valid_type(Type::Int)
            .required(false);
        spec.output("r1").required(false);
        spec.output("r2").required(false);
        spec.output("inspected").required(false);
        spec.outline([
            step("launch", Self::launch),
            step("reassign", Self::reassign),
            step("collect", Self::collect),
        ]);
    }
}

fn add(p: &mut Ctx, x: i64, y: i64) -> Result<damson_guest::ChildId> {
    p.launch("add", json!({"x": x, "y": y}))
}

impl Parent {
    fn launch(&mut self, p: &mut Ctx) -> Step {
        match p.input::<String>("mode")?.as_str() {
            "many" => {
                for i in 0..p.input::<i64>("count")? {
                    let child = add(p, i, i)?;
                    p.append_to_context("results", &child);
                }
            }
            "pair" => {
                let (a, b) = (add(p, 1, 1)?, add(p, 2, 2)?);
                p.to_context("r1", &a);
                p.to_context("r2", &b);
            }
            "fail" => {
                let child = p.launch("fail", json!({}))?;
                p.to_context("failed", &child);
            }
            "inspect" => {
                let child = p.launch("fail", json!({}))?;
                p.inspect_in_context("failed", &child);
            }
            "last" => {}
            // Slow children that keep their state in memory, for the durability tests.
            "hailstones" => {
                for i in 0..p.input::<i64>("count")? {
                    let child = p.launch("hailstone", json!({"n": 27 + i, "delay_ms": 20}))?;
                    p.append_to_context("results", &child);
                }
            }
            other => bail!("unknown mode '{other}'"),
        }
        Ok(Next::Continue)
    }

    /// In "pair" mode, awaits another child into `r1`, replacing the first.
    fn reassign(&mut self, p: &mut Ctx) -> Step {
        if p.input::<String>("mode")? == "pair" {
            p.out("r1", p.get::<Value>("r1")?["outputs"]["sum"].clone())?;
            let b = add(p, 2, 2)?;
            p.to_context("r1", &b);
        }
        Ok(Next::Continue)
    }

    fn collect(&mut self, p: &mut Ctx) -> Step {
        match p.input::<String>("mode")?.as_str() {
            "many" => {
                let results: Vec<Value> = p.get_opt("results")?.unwrap_or_default();
                let total: i64 = results
                    .iter()
                    .filter_map(|r| r["outputs"]["sum"].as_i64())
                    .sum();
                p.out("total", total)?;
                p.out("children", results.len())?;
            }
            "pair" => {
                // r1 now holds the second child, like r2.
                p.out("r2", p.get::<Value>("r2")?["outputs"]["sum"].clone())?;
                p.out("total", p.get::<Value>("r1")?["outputs"]["sum"].clone())?;
            }
            "hailstones" => {
                let results: Vec<Value> = p.get("results")?;
                let total: i64 = results
                    .iter()
                    .filter_map(|r| r["outputs"]["steps"].as_i64())
                    .sum();
                p.out("total", total)?;
                p.out("children", results.len())?;
            }
            "inspect" => p.out("inspected", p.get::<Value>("failed")?["state"].clone())?,
            "last" => {
                // Children launched by the last step are awaited too (aiida-core#3163).
                for i in 0..p.input::<i64>("count")? {
                    let child = add(p, i, 1)?;
                    p.append_to_context("late", &child);
                }
            }
            _ => {}
        }
        Ok(Next::Continue)
    }
}

damson_guest::export!(Parent);
