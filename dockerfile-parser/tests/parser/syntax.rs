//! The lossless tree: printing gives back the input, on hand-picked files
//! and on random ones (proptest); spans are always valid.

use kiln_dockerfile_parser::{Dockerfile, NodeKind, PieceKind, SyntaxTree};
use proptest::prelude::*;

fn assert_tree_invariants(src: &str) {
    let tree = SyntaxTree::parse(src);
    assert_eq!(tree.print(), src);
    // Nodes and pieces are contiguous and cover the source.
    let mut at = 0;
    for n in &tree.nodes {
        assert_eq!(n.span.start, at, "node gap in {src:?}");
        let mut p_at = n.span.start;
        for p in tree.node_pieces(n) {
            assert_eq!(p.span.start, p_at, "piece gap in {src:?}");
            assert!(!p.span.is_empty());
            assert!(src.is_char_boundary(p.span.start) && src.is_char_boundary(p.span.end));
            p_at = p.span.end;
        }
        assert_eq!(p_at, n.span.end);
        at = n.span.end;
    }
    assert_eq!(at, src.len());
    // Diagnostics point inside the text.
    let (df, errors) = Dockerfile::parse_partial(src);
    for d in &errors {
        assert!(
            d.span.start <= d.span.end && d.span.end <= src.len(),
            "{d:?}"
        );
        assert!(d.start.line >= 1 && d.start.column >= 1);
        assert_eq!(d.text, d.span.text(src));
    }
    for i in &df.instructions {
        assert!(i.span.end <= src.len() && i.keyword_span.end <= i.span.end);
        assert!(i.start_line <= i.end_line);
    }
    let _ = kiln_dockerfile_parser::lint(&df, &Default::default());
}

#[test]
fn handpicked_files_round_trip() {
    for src in [
        "",
        "\n",
        "\u{feff}FROM a\r\nRUN x\r\n",
        "FROM a\nRUN a \\\n\n# c \\\n  b \\",
        "# escape=`\nFROM a\nRUN a `\n b",
        "RUN <<EOF\nx\n",
        "FROM a\nCOPY <<-A <<B /x\n\tq\n\tA\nr\nB\n",
        "\\",
        "\r\r\n\t \n",
        "FROM a\nRUN \\ \t\r\n x",
    ] {
        assert_tree_invariants(src);
    }
}

#[test]
fn pieces_name_their_roles() {
    let src = "FROM a\nRUN a \\\n# c\n\n  b\n";
    let tree = SyntaxTree::parse(src);
    let run = &tree.nodes[1];
    assert_eq!(run.kind, NodeKind::Instruction);
    let kinds: Vec<PieceKind> = tree.node_pieces(run).iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PieceKind::Keyword,
            PieceKind::Text,
            PieceKind::Continuation,
            PieceKind::Newline,
            PieceKind::Comment,
            PieceKind::Newline,
            PieceKind::EmptyLine,
            PieceKind::Newline,
            PieceKind::Text,
            PieceKind::Newline,
        ]
        .iter()
        .copied()
        .filter(|k| *k != PieceKind::EmptyLine)
        .collect::<Vec<_>>()
    );
    assert_eq!(
        run.logical.as_ref().map(|l| l.text.as_str()),
        Some("RUN a   b")
    );
}

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "ARG ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "LABEL ",
        "EXPOSE ",
        "#",
        "# escape=`",
        "# check=skip=all",
        "\\",
        "`",
        "\n",
        "\r\n",
        "\r",
        " ",
        "\t",
        "a",
        "b=c",
        "\"",
        "'",
        "$",
        "${",
        "}",
        ":-",
        "<<",
        "<<-",
        "EOF",
        "\tEOF",
        "-",
        "--mount=",
        "--from=x",
        "type=cache,target=/x",
        "[\"a\"]",
        "[",
        "]",
        ",",
        "AS ",
        "é",
        "\u{feff}",
        "\u{a0}",
        "\u{85}",
        "0",
        "CMD ",
        "NONE",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn print_of_parse_is_identity(tokens in prop::collection::vec(token(), 0..80)) {
        let src: String = tokens.concat();
        assert_tree_invariants(&src);
    }

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        assert_tree_invariants(&src);
    }
}
