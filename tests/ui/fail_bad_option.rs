use netref::expose;

struct Thing;

#[expose]
impl Thing {
    #[exposed(prop)]
    fn a(&self) -> i64 {
        1
    }

    #[exposed(name = 5)]
    fn b(&self) -> i64 {
        2
    }

    #[exposed(property, property)]
    fn c(&self) -> i64 {
        3
    }

    #[exposed(property, setter)]
    fn d(&self) -> i64 {
        4
    }

    #[exposed = "e"]
    fn e(&self) -> i64 {
        5
    }

    #[exposed]
    #[exposed(property)]
    fn f(&self) -> i64 {
        6
    }

    #[exposed(setter, name = "g")]
    fn set_f(&self, _f: i64) {}

    #[exposed]
    const H: i64 = 8;

    #[exposed(name = "")]
    fn i(&self) -> i64 {
        9
    }

    #[cfg_attr(all(), exposed)]
    fn j(&self) -> i64 {
        10
    }
}

fn main() {}
