"""Convolution, pooling and batch norm: the reference values, the window geometry, gradients and state."""

import numpy as np
import pytest

from helpers import CONFIGS, scale_gradient
from nnctl import kernels
from nnctl.builder import build_model
from nnctl.config import from_dict, load_config
from nnctl.errors import ConfigError
from nnctl.experiment import build
from nnctl.gradcheck import check_layer, check_model
from nnctl.layers import window
from nnctl.layers.window import Window, col2im, im2col
from nnctl.model import Model

X = np.array([[[3, 0, 4, 2], [6, 5, 4, 3], [3, 0, 2, 3], [1, 0, 3, 1]],
              [[1, 2, 0, 1], [3, 0, 2, 4], [1, 0, 3, 2], [4, 3, 0, 1]],
              [[4, 2, 0, 1], [1, 2, 0, 4], [3, 0, 4, 2], [6, 2, 4, 5]]], dtype=np.float64)[None]

IM2COL = [[3, 0, 6, 5, 1, 2, 3, 0, 4, 2, 1, 2],
          [0, 4, 5, 4, 2, 0, 0, 2, 2, 0, 2, 0],
          [4, 2, 4, 3, 0, 1, 2, 4, 0, 1, 0, 4],
          [6, 5, 3, 0, 3, 0, 1, 0, 1, 2, 3, 0],
          [5, 4, 0, 2, 0, 2, 0, 3, 2, 0, 0, 4],
          [4, 3, 2, 3, 2, 4, 3, 2, 0, 4, 4, 2],
          [3, 0, 1, 0, 1, 0, 4, 3, 3, 0, 6, 2],
          [0, 2, 0, 3, 0, 3, 3, 0, 0, 4, 2, 4],
          [2, 3, 3, 1, 3, 2, 0, 1, 4, 2, 4, 5]]


def model_of(*layers, input_shape=(3, 4, 4), dtype=np.float64):
    return build_model(from_dict({"model": {"layers": list(layers)}}), input_shape, dtype, np.random.default_rng(0))


def test_im2col_holds_the_reference_columns_with_each_row_reordered_pixel_by_pixel():
    cols = im2col(X, Window.of(2, 1))
    np.testing.assert_array_equal(cols.reshape(9, 2, 2, 3).transpose(0, 3, 1, 2).reshape(9, 12), IM2COL)


WINDOWS = [Window.of(2, 1), Window.of(3, 2, 1, 1), Window.of([2, 3], [1, 2], 2, "same"), Window.of(3, 1, 1, "same"),
           Window.of(3, 1, [1, 3], 2), Window.of([1, 4], [3, 1], 1, [0, 3]), Window.of(7, 1, 1, 3)]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("channels", [1, 3])  # one: the layers take the reference on the CPU
def test_the_im2col_kernels_twin_equals_its_reference_and_a_loop_over_every_window(window, channels):
    x = np.random.default_rng(0).standard_normal((2, 7, 7, channels))
    (top, _), (left, _) = window.pads(x.shape[1:3])
    oh, ow = window.output_size(x.shape[1:3])
    geometry = (*window.kernel, *window.stride, *window.dilation, top, left)
    expected = np.zeros((2, oh, ow, *window.kernel, channels))
    for p, q, i, j in np.ndindex(oh, ow, *window.kernel):
        y, c = p * window.stride[0] + i * window.dilation[0] - top, q * window.stride[1] + j * window.dilation[1] - left
        if 0 <= y < 7 and 0 <= c < 7:
            expected[:, p, q, i, j] = x[:, y, c]
    for im2col_ in (kernels.im2col_.reference, kernels.im2col_.compiled()):
        out = im2col_(x, geometry, np.full((2, oh, ow, window.kernel[0] * window.kernel[1] * channels), np.nan))
        np.testing.assert_array_equal(out.reshape(expected.shape), expected)


def test_conv_reference():
    weights = np.stack([np.ones((3, 2, 2)), np.full((3, 2, 2), 2.0)])
    model = model_of({"type": "conv2d", "filters": 2, "kernel_size": 2, "weight_init": weights.tolist()})
    y = model.forward(X)
    first = [[29, 21, 25], [24, 22, 33], [23, 21, 30]]
    assert y.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(y[0, 0], first)
    np.testing.assert_array_equal(y[0, 1], 2 * np.array(first))


def test_maxpool_reference():
    y = model_of({"type": "maxpool2d", "pool_size": 2}).forward(X)
    np.testing.assert_array_equal(y[0], [[[6, 4], [3, 3]], [[3, 4], [4, 3]], [[4, 4], [6, 5]]])


def test_avgpool_and_global_average_values():
    np.testing.assert_array_equal(model_of({"type": "avgpool2d"}).forward(X)[0, 0], [[3.5, 3.25], [1.0, 2.25]])
    np.testing.assert_allclose(model_of({"type": "global_avg_pool2d"}).forward(X)[0], X[0].mean(axis=(1, 2)))


def window_counts(shape, window):
    """How many windows cover each pixel, counted with plain loops over every window."""
    (top, _), (left, _) = window.pads(shape[2:])
    oh, ow = window.output_size(shape[2:])
    counts = np.zeros(shape[2:])
    for r in range(oh):
        for c in range(ow):
            for i in range(window.kernel[0]):
                for j in range(window.kernel[1]):
                    y = r * window.stride[0] + i * window.dilation[0] - top
                    x = c * window.stride[1] + j * window.dilation[1] - left
                    if 0 <= y < shape[2] and 0 <= x < shape[3]:
                        counts[y, x] += 1
    return counts


@pytest.mark.parametrize("window", WINDOWS)
def test_col2im_of_im2col_is_x_times_the_window_count(window):
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7))
    oh, ow = window.output_size(x.shape[2:])
    kh, kw = window.kernel
    cols = im2col(x, window).reshape(2, oh, ow, kh, kw, 3)
    back = col2im(lambda i, j, _: cols[:, :, :, i, j].transpose(0, 3, 1, 2), x.shape, window, x.dtype)
    np.testing.assert_allclose(back, x * window_counts(x.shape, window))


@pytest.mark.parametrize("size, kernel, stride, pads, out", [
    (28, 3, 1, (1, 1), 28),
    (28, 4, 1, (1, 2), 28),   # even kernel: the extra pixel goes after, as in TensorFlow
    (28, 5, 2, (1, 2), 14),
    (7, 2, 2, (0, 1), 4),
    (7, 3, 2, (1, 1), 4),
    (8, 3, 2, (0, 1), 4),
    (6, 1, 4, (0, 0), 2),     # no padding needed; the output is still ceil(6 / 4)
])
def test_same_padding_sizes(size, kernel, stride, pads, out):
    window = Window.of(kernel, stride, 1, "same")
    assert window.pads((size, size)) == (pads, pads)
    assert window.output_size((size, size)) == (out, out)


@pytest.mark.parametrize("window, message", [
    (Window.of(5, 1), "the window spans 5 rows but the padded input has only 4"),
    (Window.of(3, 1, 2), "the window spans 5 rows but the padded input has only 4"),
    (Window.of(2, 3), "4 - 2 is not a multiple of 3"),
])
def test_impossible_geometry(window, message):
    with pytest.raises(ValueError, match=message):
        window.output_size((4, 4))


@pytest.mark.parametrize("name, config, input_shape", [
    ("conv2d", {"filters": 3, "kernel_size": 3, "stride": 2, "padding": "same"}, (2, 6, 5)),
    ("conv2d", {"filters": 2, "kernel_size": 2, "padding": "same", "use_bias": False}, (3, 4, 5)),
    ("conv2d", {"filters": 2, "kernel_size": 3, "dilation": 2, "padding": [2, 1]}, (2, 6, 6)),
    ("conv2d", {"filters": 4, "kernel_size": [1, 3], "stride": [2, 1], "activation": "relu"}, (2, 5, 5)),
    ("conv2d", {"filters": 2, "kernel_size": 3, "padding": 1, "activation": "relu"}, (3, 5, 4)),
    ("conv2d", {"filters": 2, "kernel_size": [3, 2]}, (3, 5, 4)),
    ("maxpool2d", {"pool_size": 2}, (2, 4, 6)),
    ("maxpool2d", {"pool_size": 3, "stride": 2, "padding": 1}, (2, 5, 5)),
    ("maxpool2d", {"pool_size": 2, "padding": "same"}, (2, 5, 3)),  # padded to tiles: 6×4
    ("avgpool2d", {"pool_size": [2, 3], "stride": 1}, (2, 4, 5)),
    ("avgpool2d", {"pool_size": 2, "padding": "same"}, (2, 5, 3)),  # col2im assigns over the padded tiles
    ("batchnorm", {}, (4,)),
    ("batchnorm", {"affine": False}, (2, 3, 3)),
])
def test_gradients_of_more_geometries(name, config, input_shape):
    for check in check_layer(name, example={"config": config, "input_shape": input_shape}):
        assert check.passed, f"{name} {config}: {check.tensor} relative error {check.error:.2e}"


def test_a_padded_maxpool_whose_padded_image_it_tiles_equals_the_general_path(monkeypatch):
    """7 -> 4 with padding 'same' (the deep CNN's last pool) runs the tiles kernel on the padded image."""
    from nnctl.layers import pool

    x = np.random.default_rng(0).standard_normal((3, 2, 7, 7))
    runs = []
    for tiled in (True, False):
        if not tiled:
            monkeypatch.setattr(pool, "maxpool_tiles", None)  # fails if called
            monkeypatch.setattr(pool.Window, "tiles", lambda self, size: False)
        model = model_of({"type": "maxpool2d", "pool_size": 2, "padding": "same"}, input_shape=(2, 7, 7))
        model.layers[0].input_grad = True
        y = model.forward(x, training=True)
        assert (model.layers[0].where is not None) == tiled
        runs.append((y, model.backward(np.cos(y))))
    for tiled, general in zip(*runs, strict=True):
        np.testing.assert_array_equal(tiled, general)


@pytest.mark.parametrize("layer", ["maxpool2d", "avgpool2d"])
def test_a_pool_padded_by_more_than_half_its_size_is_refused(layer):
    """With padding 5 around 2×2 windows, some windows hold only padding: -inf for a max pool (NaN downstream)."""
    config = from_dict({"model": {"layers": [{"type": layer, "pool_size": 2, "padding": 5}]}})
    with pytest.raises(ConfigError, match=r"padding \[5, 5\] must be at most half the pool size \[2, 2\]"):
        build_model(config, (1, 6, 6), np.float64, np.random.default_rng(0))
    config = from_dict({"model": {"layers": [{"type": layer, "pool_size": 3, "stride": 2, "padding": 1}]}})
    build_model(config, (1, 5, 5), np.float64, np.random.default_rng(0))  # 1 of 3: as PyTorch allows


def test_maxpool_gradient_goes_to_the_first_maximum_only():
    model = model_of({"type": "maxpool2d", "pool_size": 2}, input_shape=(1, 2, 2))
    model.layers[0].input_grad = True
    model.forward(np.array([[[[1.0, 5.0], [5.0, 0.0]]]]))
    np.testing.assert_array_equal(model.backward(np.array([[[[2.0]]]]))[0, 0], [[0, 2], [0, 0]])


def test_batchnorm_normalizes_while_training_and_uses_running_statistics_in_eval():
    rng = np.random.default_rng(0)
    model = model_of({"type": "batchnorm", "momentum": 0.5}, input_shape=(2, 3, 3))
    layer = model.layers[0]
    layer.params["gamma"][...] = [2.0, 3.0]
    layer.params["beta"][...] = [-1.0, 1.0]
    x = rng.normal(5.0, 4.0, (6, 2, 3, 3))
    y = model.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), [-1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), [2.0, 3.0], rtol=1e-5)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.state["running_mean"], 0.5 * mean)
    np.testing.assert_allclose(layer.state["running_var"], 0.5 + 0.5 * var)
    one = x[:1]
    expected = ((one - (0.5 * mean)[:, None, None]) / np.sqrt(0.5 + 0.5 * var + 1e-5)[:, None, None]
                * np.array([2.0, 3.0])[:, None, None] + np.array([-1.0, 1.0])[:, None, None])
    np.testing.assert_allclose(model.forward(one, training=False), expected)
    np.testing.assert_array_equal(layer.state["running_mean"], 0.5 * mean)  # eval leaves the statistics alone


def test_a_dense_batchnorm_batch_of_one_sample_leaves_the_running_statistics_alone():
    """One value per channel has no variance: it used to shrink running_var by the momentum (PyTorch refuses it)."""
    model = model_of({"type": "batchnorm"}, input_shape=(4,))
    layer = model.layers[0]
    layer.state["running_mean"][...], layer.state["running_var"][...] = 1.0, 2.0
    y = model.forward(np.arange(4.0)[None], training=True)
    np.testing.assert_array_equal(y, np.zeros((1, 4)))  # beta: the one sample is its own mean
    assert layer.state["running_mean"].tolist() == [1.0] * 4 and layer.state["running_var"].tolist() == [2.0] * 4


def test_conv_runs_in_float32_and_keeps_the_dtype():
    model = model_of({"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
                     {"type": "batchnorm"}, {"type": "maxpool2d"}, {"type": "flatten"}, dtype=np.float32)
    y = model.forward(X.astype(np.float32), training=True)
    assert y.shape == (1, 16) and y.dtype == np.float32
    assert model.backward(np.ones_like(y)) is None  # the first layer computes no input gradient
    assert all(g.dtype == np.float32 for g in model.grads())


def test_parameter_counts_of_the_references():
    assert model_of({"type": "conv2d", "filters": 2, "kernel_size": 3}, input_shape=(3, 5, 5)).num_params == 56
    same = {"kernel_size": 2, "padding": "same"}
    cifar = model_of({"type": "conv2d", "filters": 16, **same}, {"type": "maxpool2d"},
                     {"type": "conv2d", "filters": 32, **same}, {"type": "maxpool2d"},
                     {"type": "conv2d", "filters": 64, **same}, {"type": "maxpool2d"},
                     {"type": "flatten"}, {"type": "dense", "units": 500}, {"type": "dense", "units": 10},
                     input_shape=(3, 32, 32))
    assert cifar.num_params == 528_054


def test_conv_reusing_its_column_buffer_across_batch_sizes_gives_fresh_results():
    x = np.random.default_rng(0).standard_normal((5, 3, 4, 4))
    layer = {"type": "conv2d", "filters": 2, "kernel_size": 3, "padding": 1, "activation": "relu"}
    reused = model_of(layer, {"type": "conv2d", "filters": 2, "kernel_size": 2})
    for batch in (x, x[:2], x):
        y = reused.forward(batch, training=True)
        dx = reused.backward(np.ones_like(y))
        fresh = model_of(layer, {"type": "conv2d", "filters": 2, "kernel_size": 2})
        fresh.layers[0].input_grad = reused.layers[0].input_grad
        np.testing.assert_array_equal(y, fresh.forward(batch, training=True))
        assert dx is None and fresh.backward(np.ones_like(y)) is None
        for a, b in zip(reused.grads(), fresh.grads(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_column_blocks_split_a_batch_evenly_over_the_threads(monkeypatch):
    """10 images of 4·4 one-channel 3×3 windows, at most 7 a block: 5 + 5 on one or two threads, not 7 + 3;
    three threads get three blocks."""
    x = np.zeros((10, 1, 4, 4))
    monkeypatch.setattr(window, "CACHE_BYTES", 7 * 16 * 9 * x.itemsize)
    for workers, sizes in ((1, [5, 5]), (2, [5, 5]), (3, [4, 4, 2])):
        blocks = window.ColumnBlocks(x, Window.of(3, 1, 1, 1), window.Scratch(), workers)
        assert [min(blocks.starts.step, len(x) - i) for i in blocks.starts] == sizes


@pytest.mark.parametrize(("workers", "activation"), [(1, "relu"), (2, "relu"), (3, "relu"), (2, "tanh"),
                                                      (2, "sigmoid"), (2, "elu"), (2, "leaky_relu"), (2, "softmax")])
def test_a_conv_in_blocks_over_threads_equals_it_in_one_block(workers, activation, monkeypatch):
    """Blocks of a few images each, taken by 1-3 threads (one block per image here, 7 blocks), each block's rows
    through the activation's backward: the output and every gradient equal the whole batch's single product
    (float64, 1e-12), bit for bit the same on every call."""
    x = np.random.default_rng(0).standard_normal((7, 3, 6, 5))
    layer = {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1, "activation": activation}
    runs = []
    for cache, threads in ((1 << 62, 1), (1, workers), (1, workers)):
        monkeypatch.setattr(window, "CACHE_BYTES", cache)
        model = model_of(layer, {"type": "conv2d", "filters": 2, "kernel_size": 2}, input_shape=(3, 6, 5))
        conv = model.layers[0]
        conv.input_grad, conv.threads = True, threads
        blocks = window.ColumnBlocks(x, conv.window, conv.scratch, conv.threads)
        assert (len(blocks.starts), blocks.threads) == ((1, 1) if cache > 1 else (7, workers))
        y = model.forward(x, training=True)
        runs.append([y, model.backward(np.cos(y)), *(g.copy() for g in model.grads())])
    for blocked in runs[1:]:
        for whole, part in zip(runs[0], blocked, strict=True):
            np.testing.assert_allclose(part, whole, rtol=1e-12, atol=1e-12)
    for first, second in zip(runs[1], runs[2], strict=True):
        np.testing.assert_array_equal(first, second)  # summed in block order, whichever thread took a block


@pytest.mark.parametrize("padding", [1, "same", [2, 1]])
def test_a_conv_in_blocks_of_several_images_gives_the_input_gradient_of_the_whole_batch(padding, monkeypatch):
    """The gradients are computed block by block (each block's images, from the columns of their dz under the
    adjoint window): blocks of 2, 2, 2 and 1 images on two threads give the whole batch's values."""
    x = np.random.default_rng(1).standard_normal((7, 3, 6, 5))
    layer = {"type": "conv2d", "filters": 4, "kernel_size": [3, 3], "padding": padding, "dilation": [1, 2],
             "activation": "tanh"}
    runs = []
    for cache, threads in ((1 << 62, 1), (2 * 6 * 5 * 36 * x.itemsize, 2)):  # 2 images' 6·5 rows of 4·3·3
        monkeypatch.setattr(window, "CACHE_BYTES", cache)
        model = model_of(layer, {"type": "conv2d", "filters": 2, "kernel_size": 2}, input_shape=(3, 6, 5))
        conv = model.layers[0]
        conv.input_grad, conv.threads = True, threads
        adjoint = conv.window.adjoint(x.shape[2:])
        assert adjoint is not None
        dz = np.empty((len(x), 4, *conv.window.output_size(x.shape[2:])))
        blocks = window.ColumnBlocks(dz, adjoint, window.Scratch(), conv.threads)  # as the backward deals them
        y = model.forward(x, training=True)
        runs.append(([min(blocks.starts.step, len(x) - i) for i in blocks.starts],
                     [y, model.backward(np.cos(y)), *(g.copy() for g in model.grads())]))
    (whole_sizes, whole), (sizes, blocked) = runs
    assert (whole_sizes, sizes) == ([7], [2, 2, 2, 1])
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_a_conv_backward_through_the_adjoint_window_gathers_one_set_of_columns_a_block(monkeypatch):
    """dz's columns under the adjoint window give dW as well as dx: the backward gathers them once a block and
    never x's columns again (it gathered both, a third pass over the columns each step); dW is x's pixels times
    them, as the columns of x times dz gives it."""
    x = np.random.default_rng(2).standard_normal((6, 3, 5, 4))
    layer = {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1, "dilation": [1, 2]}
    conv = model_of(layer, input_shape=(3, 5, 4)).layers[0]
    conv.input_grad = True
    monkeypatch.setattr(window, "CACHE_BYTES", 1)  # a block an image
    y = conv.forward(x, training=True)
    gathered, real = [], window.im2col
    monkeypatch.setattr(window, "im2col", lambda images, win, out=None: gathered.append(images.shape[1]) or
                        real(images, win, out))
    conv.backward(np.cos(y))
    assert gathered == [4] * len(x)  # dz's channels, one block of columns per image
    gW = conv.grads["W"].copy()
    conv.input_grad = False  # no adjoint: dW from the columns of x
    conv.backward(np.cos(y))
    np.testing.assert_allclose(conv.grads["W"], gW, rtol=1e-12, atol=1e-12)


def test_a_first_conv_on_grey_images_keeps_its_columns_from_forward_for_its_weight_gradient(monkeypatch):
    """A conv without an input gradient whose columns are no wider than its output (one channel, 3×3, 9 filters)
    gathers them once a step, in forward, into one buffer: backward reads them there (gathering them again cost
    mnist_cnn 10 % of its step) and gives the gradients of columns gathered again."""
    x = np.random.default_rng(3).standard_normal((5, 1, 6, 5))
    conv = model_of({"type": "conv2d", "filters": 9, "kernel_size": 3, "padding": 1}, input_shape=(1, 6, 5)).layers[0]
    monkeypatch.setattr(window, "CACHE_BYTES", 1)  # a block an image
    gathered, real = [], window.im2col
    monkeypatch.setattr(window, "im2col", lambda images, win, out=None: gathered.append(len(images)) or
                        real(images, win, out))
    grads = []
    for keeps in (True, False):
        conv.input_grad = not keeps  # with an input gradient the forward keeps nothing
        y = conv.forward(x, training=True)
        conv.input_grad = False
        gathered.clear()
        conv.backward(np.cos(y))
        assert gathered == ([] if keeps else [1] * len(x))
        grads.append([g.copy() for g in conv.grads.values()])
    assert conv.working_values() == 6 * 5 * 9
    for kept, again in zip(*grads, strict=True):
        np.testing.assert_array_equal(kept, again)


@pytest.mark.slow  # 8 s: two gradient checks of every tensor of mnist_deep_cnn
def test_gradcheck_of_a_deep_cnn_measures_again_the_bias_entries_that_cross_a_kink_and_still_catches_an_error(
        monkeypatch):
    """A conv bias moves every unit of its channel at once (100,000 on 8 MNIST images): within ±1e-6 one may cross
    a ReLU or max-pool kink, where the central difference is not the gradient (3 conv biases failed at 2e-4 to 2e-3).
    Such entries are measured again with smaller steps; a bias gradient 1 % off still fails."""
    config = load_config(CONFIGS / "mnist_deep_cnn.yaml", ["data.subset=200", "data.validation=20",
                                                          "data.test_subset=10", "dtype=float64"])
    checks = check_model(build(config))
    assert all(check.passed for check in checks), [(c.target, c.tensor, c.error) for c in checks if not c.passed]
    kinked = [check for check in checks if check.kind == "kinks"]
    assert kinked and all(check.tensor == "b" and check.kinks < check.shape[0] for check in kinked)

    scale_gradient(monkeypatch, type(build(config).model.layers[0]), "b")
    failed = {(c.target, c.tensor) for c in check_model(build(config)) if not c.passed}
    assert failed == {(f"conv2d_{i}", "b") for i in range(1, 7)}


def test_gradcheck_lists_the_parameters_behind_a_perceptron_rule_without_comparing_them():
    checks = check_model(build(load_config(CONFIGS / "perceptron_and.yaml")))
    assert [(c.target, c.tensor, c.kind, c.passed) for c in checks] == [
        ("dense_1", "W", "surrogate", True), ("dense_1", "b", "surrogate", True), ("model", "input", "surrogate", True)]


@pytest.mark.parametrize("eps", [1e-6, 1e-3])
def test_measuring_again_with_smaller_steps_lets_no_wrong_gradient_pass_on_a_smooth_model(monkeypatch, eps):
    """xor_mlp (tanh: no kink) with one sample's input gradient 0.1 % off: a rule that left out the entries whose
    one-sided differences disagreed (curvature does that too) passed it at eps 1e-3."""
    backward = Model.backward

    def off(self, dy):
        dx = backward(self, dy).copy()
        dx[-1] *= 1.001
        return dx

    monkeypatch.setattr(Model, "backward", off)
    checks = check_model(build(load_config(CONFIGS / "xor_mlp.yaml", ["dtype=float64"])), eps=eps)
    assert [(c.tensor, c.passed) for c in checks if not c.passed] == [("input", False)]
