//! `wrongworld`: a test plugin built against a future version of Damson's world (9.0.0), which
//! the host must refuse with a message naming both versions.
wit_bindgen::generate!({
    inline: "
        package damson:workflow@9.0.0;
        interface process {
            describe: func() -> string;
        }
        world plugin {
            export process;
        }
    ",
});

struct Future;

impl exports::damson::workflow::process::Guest for Future {
    fn describe() -> String {
        "from the future".to_string()
    }
}

export!(Future);
