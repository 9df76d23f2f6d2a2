from laam.windows import WindowPolicy, default_stride


def test_every_position_scored_once_with_the_generation_context():
    for length in range(1, 80):
        for context in (1, 2, 5, 8, 16):
            for stride in range(1, context + 1):
                policy = WindowPolicy(context, stride)
                spans = policy.windows(length)
                assert all(end - start - 1 <= context for start, end, _ in spans)
                for position in range(1, length):
                    hits = [w for w in spans if w[2] <= position < w[1]]
                    assert len(hits) == 1, (length, context, stride, position)
                    start = hits[0][0]
                    assert start == policy.context_start(position)
                    assert 0 < position - start <= context
                    # the window slides right after the last position it predicts
                    assert policy.window_end(position) >= position
                    assert policy.context_start(policy.window_end(position) + 1) != start


def test_examples():
    assert WindowPolicy(8, 4).windows(20) == [(0, 9, 1), (4, 13, 9), (8, 17, 13), (12, 20, 17)]
    assert WindowPolicy(8, 4).windows(5) == [(0, 5, 1)]
    assert default_stride(512) == 256
