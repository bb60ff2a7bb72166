//! Rewrite a Dockerfile through the lossless tree: upper-case every
//! instruction keyword and leave every other byte (comments, continuations,
//! heredocs, line endings) as it was: `cargo run --example rewrite -- Dockerfile`.

use kiln_dockerfile_parser::{PieceKind, SyntaxTree};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: rewrite DOCKERFILE")?;
    let text = std::fs::read_to_string(&path)?;
    let tree = SyntaxTree::parse(&text);
    let mut out = String::with_capacity(text.len());
    for piece in &tree.pieces {
        let s = piece.span.text(tree.source());
        if piece.kind == PieceKind::Keyword {
            out.push_str(&s.to_uppercase());
        } else {
            out.push_str(s);
        }
    }
    print!("{out}");
    Ok(())
}
