// The Python module `farsee` (DESIGN.md section 14): farsee::Segmenter for NumPy arrays, through
// the public header only. Images are uint8 (H, W, 3) RGB arrays; anything else is a ValueError
// naming what was given. The network runs with the GIL released; farsee::Error becomes
// farsee.Error (a RuntimeError) with the same message.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "farsee/farsee.h"

namespace py = pybind11;

namespace {

using Size = std::optional<std::pair<int, int>>;
using Image = py::array_t<uint8_t, py::array::c_style>;

std::string shape_text(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s << (d ? ", " : "") << a.shape(d);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

// A C-contiguous uint8 (H, W, 3) view (a copy only when the array is not contiguous).
Image checked_image(const py::handle& image) {
  if (!py::isinstance<py::array>(image)) {
    throw py::value_error("image must be a NumPy uint8 array of shape (H, W, 3), got " +
                          std::string(py::str(py::type::of(image).attr("__name__"))));
  }
  const py::array a = py::reinterpret_borrow<py::array>(image);
  if (!a.dtype().is(py::dtype::of<uint8_t>()) || a.ndim() != 3 || a.shape(2) != 3) {
    throw py::value_error("image must be a NumPy uint8 array of shape (H, W, 3) (RGB), got " +
                          std::string(py::str(a.dtype())) + " array of shape " + shape_text(a));
  }
  return Image::ensure(a);
}

std::pair<int, int> output_size(const Size& size) {
  return size ? *size : std::pair<int, int>{0, 0};
}

py::array_t<uint8_t> segment(farsee::Segmenter& s, const py::handle& image, const Size& size) {
  const Image rgb = checked_image(image);
  const auto [oh, ow] = output_size(size);
  farsee::LabelMap labels;
  {
    py::gil_scoped_release release;
    labels = s.segment(rgb.data(), int(rgb.shape(0)), int(rgb.shape(1)), oh, ow);
  }
  py::array_t<uint8_t> out({labels.height, labels.width});
  std::memcpy(out.mutable_data(), labels.data.data(), labels.data.size());
  return out;
}

py::array_t<float> logits(farsee::Segmenter& s, const py::handle& image, const Size& size) {
  const Image rgb = checked_image(image);
  const auto [oh, ow] = output_size(size);
  std::vector<float> values;
  {
    py::gil_scoped_release release;
    values = s.logits(rgb.data(), int(rgb.shape(0)), int(rgb.shape(1)), oh, ow);
  }
  const int h = oh ? oh : int(rgb.shape(0)), w = ow ? ow : int(rgb.shape(1));
  py::array_t<float> out({s.num_classes(), h, w});
  std::memcpy(out.mutable_data(), values.data(), values.size() * sizeof(float));
  return out;
}

std::unique_ptr<farsee::Segmenter> make(const std::optional<std::string>& weights,
                                        const std::optional<std::string>& preset,
                                        const Size& input_size, const std::string& precision,
                                        const std::string& executor, int num_threads,
                                        const std::optional<std::string>& config,
                                        std::optional<int64_t> random_seed) {
  farsee::SegmenterOptions o;
  o.weights = weights.value_or("");
  o.preset = preset.value_or("");
  o.config_file = config.value_or("");
  if (input_size) std::tie(o.input_height, o.input_width) = *input_size;
  o.precision = precision;
  o.executor = executor;
  o.num_threads = num_threads;
  o.random_seed = random_seed.value_or(-1);
  py::gil_scoped_release release;
  return std::make_unique<farsee::Segmenter>(o);
}

}  // namespace

PYBIND11_MODULE(farsee, m) {
  m.doc() = "FarSee-Net semantic segmentation (the C++ library farsee/farsee.h)";
  m.attr("__version__") = farsee::version();
  py::register_exception<farsee::Error>(m, "Error", PyExc_RuntimeError);
  py::class_<farsee::Segmenter>(m, "Segmenter",
                                "One network; use it from one thread at a time. Settings left "
                                "None come from the weights file's metadata.")
      .def(py::init(&make), py::arg("weights") = py::none(), py::arg("preset") = py::none(),
           py::arg("input_size") = py::none(), py::arg("precision") = "fp32",
           py::arg("executor") = "auto", py::arg("num_threads") = 0, py::arg("config") = py::none(),
           py::arg("random_seed") = py::none())
      .def("segment", &segment, py::arg("image"), py::arg("output_size") = py::none(),
           "uint8 (H, W, 3) RGB -> uint8 (H, W) class indices (trainIds)")
      .def("logits", &logits, py::arg("image"), py::arg("output_size") = py::none(),
           "uint8 (H, W, 3) RGB -> float32 (C, H, W) logits at the output size")
      .def_property_readonly("num_classes", &farsee::Segmenter::num_classes)
      .def_property_readonly("class_names", &farsee::Segmenter::class_names)
      .def_property_readonly("preset", &farsee::Segmenter::preset)
      .def_property_readonly("input_size",
                             [](const farsee::Segmenter& s) {
                               return std::pair<int, int>{s.input_height(), s.input_width()};
                             })
      .def_property_readonly("precision", &farsee::Segmenter::precision)
      .def_property_readonly("executor", &farsee::Segmenter::executor)
      .def_property_readonly("notes", &farsee::Segmenter::notes);
}
