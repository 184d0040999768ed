// Package distill turns a dense teacher model into a Mixture of Distilled
// Experts (MoDE): it clusters each layer's FFN neurons into experts, fits a
// linear router per layer on calibration hidden states, optionally refits
// routers and down projections in closed form (layer by layer on the
// partly distilled student's own hidden states), optionally fine-tunes the
// routers, experts or every weight against the teacher with a small manual
// forward and backward pass (on the calibration text or on fresh teacher
// samples), and measures the student against the teacher on held-out text.
// Compare measures any student — a distilled mixture or a quantised pack —
// against its teacher the same way, both run on the runtime's CPU engine.
//
// The package owns the whole distillation pipeline but no file formats: it
// takes and returns model.Model values and token sequences; the modelpack
// command reads sources, tokenises text and writes packs.
package distill
