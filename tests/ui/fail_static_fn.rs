use netref::expose;

struct Factory;

#[expose]
impl Factory {
    #[exposed]
    fn make() -> Factory {
        Factory
    }

    #[exposed]
    fn version(major: u32) -> String {
        format!("{major}.0")
    }
}

fn main() {}
