"""Model zoo: CNN, ResNet, LSTM, ConvLSTM, U-Net, an encoder-decoder without skips
(encdec), a fully convolutional network (FCN), and for sequences an Elman RNN, a
temporal convolutional network (TCN) and an MLP on lags.

Build any of them with ``pipeline.models.registry.build_model(spec, shapes)``. This
package's ``__init__`` imports nothing, so the torch-free ``specs`` module can be used
while the config is checked.
"""
