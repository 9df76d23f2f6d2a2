from laam.windows import context_start, default_stride, windows


def test_every_position_scored_once_with_the_generation_context():
    for length in range(1, 80):
        for context in (1, 2, 5, 8, 16):
            for stride in range(1, context + 1):
                spans = windows(length, context, stride)
                assert all(end - start - 1 <= context for start, end, _ in spans)
                for position in range(1, length):
                    hits = [w for w in spans if w[2] <= position < w[1]]
                    assert len(hits) == 1, (length, context, stride, position)
                    start = hits[0][0]
                    assert start == context_start(position, context, stride)
                    assert 0 < position - start <= context


def test_examples():
    assert windows(20, 8, 4) == [(0, 9, 1), (4, 13, 9), (8, 17, 13), (12, 20, 17)]
    assert windows(5, 8, 4) == [(0, 5, 1)]
    assert default_stride(512) == 256
