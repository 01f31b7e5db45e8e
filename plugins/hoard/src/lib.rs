//! `hoard`: fills its context with `ints` integers and its own memory with about `mib` MiB of
//! customer-like records (names, e-mail addresses, tags, scores, histories, an index by
//! e-mail), then pauses mid-outline. The checkpoint benchmark (plumpy's case c) saves and
//! loads it.
use std::collections::HashMap;

use damson_guest::prelude::*;

const FIRST: [&str; 8] = [
    "ada", "alan", "grace", "edsger", "barbara", "donald", "frances", "ken",
];
const LAST: [&str; 8] = [
    "lovelace", "turing", "hopper", "dijkstra", "liskov", "knuth", "allen", "thompson",
];
const TAGS: [&str; 6] = ["gold", "trial", "churned", "eu", "us", "beta"];

struct Customer {
    id: u64,
    name: String,
    email: String,
    tags: Vec<&'static str>,
    score: f64,
    history: Vec<u32>,
}

#[derive(Default)]
struct Hoard {
    customers: Vec<Customer>,
    by_email: HashMap<String, usize>,
}

impl Process for Hoard {
    fn define(spec: &mut Spec<Self>) {
        spec.input("ints")
            .valid_type(Type::Int)
            .default(1000)
            .help("How many integers the context holds");
        spec.input("mib")
            .valid_type(Type::Int)
            .default(0)
            .help("About how many MiB of records the plugin keeps in memory");
        spec.output("customers").valid_type(Type::Int);
        spec.outline([step("fill", Self::fill), step("count", Self::count)]);
    }
}

impl Hoard {
    fn fill(&mut self, p: &mut Ctx) -> Step {
        let ints: u64 = p.input("ints")?;
        p.set("values", (0..ints).collect::<Vec<_>>())?;
        let target = p.input::<u64>("mib")? as usize * (1 << 20);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut bytes = 0;
        while bytes < target {
            let id = self.customers.len() as u64;
            let r = next();
            let (first, last) = (FIRST[(r % 8) as usize], LAST[(r >> 8) as usize % 8]);
            let customer = Customer {
                id,
                name: format!("{first} {last}"),
                email: format!("{first}.{last}.{id}@example.org"),
                tags: (0..(r >> 16) % 4)
                    .map(|i| TAGS[((r >> (20 + i)) % 6) as usize])
                    .collect(),
                score: (r % 10_000) as f64 / 100.0,
                history: (0..16).map(|_| (next() % 1000) as u32).collect(),
            };
            bytes += std::mem::size_of::<Customer>()
                + customer.name.len()
                + 2 * customer.email.len()
                + customer.tags.len() * 16
                + customer.history.len() * 4
                + 32;
            self.by_email
                .insert(customer.email.clone(), self.customers.len());
            self.customers.push(customer);
        }
        p.pause(Some("hoarding"));
        Ok(Next::Continue)
    }

    fn count(&mut self, p: &mut Ctx) -> Step {
        // Touch everything, so a bad restore shows.
        let consistent = self.customers.iter().enumerate().all(|(i, c)| {
            c.id == i as u64
                && self.by_email.get(&c.email) == Some(&i)
                && c.score < 100.0
                && !c.name.is_empty()
                && c.history.len() == 16
        });
        if !consistent {
            bail!("the records are not what was stored");
        }
        p.out("customers", self.customers.len())?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Hoard);
