"""Device presets: the physical parameters of the C model, with where each value comes from.

`REF` below is ../shared/reference/cmo-hfox-1t1r.md (Falcone et al., arXiv 2502.04524). A value
marked "calibrated" was tuned so that the reference *procedure* run on the emulator reproduces the
reference *figure* named next to it (tests/test_emulator_calibration.py checks each one); a value
marked "chosen" is a modelling choice the reference does not pin down, with the reason.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Preset:
    """Means and spreads of every parameter of the cell model (SI units)."""

    name: str
    # --- selector (NMOS in series with the ReRAM) ---
    vt: float  # threshold voltage, V
    vg_ref: float  # gate voltage of rds_ref / isat_ref, V
    rds_ref: float  # triode resistance at vg_ref, ohm
    isat_ref: float  # saturation current at vg_ref, A
    alpha_sat: float  # alpha-power-law exponent of isat(vg)
    isat_cv: float  # device-to-device relative spread of isat
    # --- transport ---
    v_ref: float  # bias at which the state conductance is defined, V
    nl: float  # hopping non-linearity sinh(nl V), 1/V
    g_leak: float  # pristine leakage, S
    g_floor: float  # lowest conductance of a formed cell, S
    g_ceiling: float  # highest conductance of a formed cell, S
    # --- forming ---
    v_form_mean: float  # V
    v_form_sigma: float  # V
    i_form_median: float  # A
    i_form_ln_sigma: float
    i_form_v_rho: float
    i_form_min: float  # A
    i_form_max: float  # A
    v_soft: float  # V per e-fold of the pre-breakdown current
    g_formed_frac: float  # g right after forming / g_max
    condition_gain: float  # rise of g on the first negative sweep
    # --- pulsed switching ---
    g_max_mean: float  # S
    g_max_cv: float
    g_min_mean: float  # S
    g_min_cv: float
    a_up_median: float  # normalized step of one reference set pulse
    a_up_ln_sigma: float
    asym_median: float  # a_down / a_up
    asym_ln_sigma: float
    gamma_up_mean: float
    gamma_up_sigma: float
    gamma_down_mean: float
    gamma_down_sigma: float
    c2c_sigma: float  # cycle-to-cycle relative std of a step
    v_th_set: float  # V (cell voltage)
    v_ref_set: float  # V (cell voltage)
    v_th_reset: float  # V (magnitude)
    v_ref_reset: float  # V (magnitude)
    v_exponent: float
    k_gmax_v: float  # 1/V
    gmax_v_cap: float
    v_w_gmin: float  # V
    g_cc_median: float  # S
    g_cc_ln_sigma: float
    vg_cc_ref: float  # V
    cc_exponent: float
    tau_switch: float  # s
    width_ref: float  # s
    width_exp: float
    # --- read noise ---
    read_sigma_abs: float  # S
    read_g_knee: float  # S
    read_ln_sigma: float
    # --- relaxation ---
    relax_tau: float  # s
    relax_mean_per_decade: float  # S per decade of (1 + t / relax_tau)
    relax_std_per_decade: float  # S per decade
    # --- temperature (docs/emulator.md "Temperature") ---
    t_ref: float  # K, the temperature every other value is given at
    ea_lrs: float  # eV, hopping activation energy of the LRS
    ea_hrs: float  # eV, of the HRS
    g_lrs_ref: float  # S, state conductance where ea_lrs applies
    g_hrs_ref: float  # S, where ea_hrs applies
    relax_ea: float  # eV, Arrhenius activation energy of relaxation
    # --- wires (crossbar MVM) ---
    r_wire: float  # ohm per segment

    def c_params(self) -> dict[str, float]:
        """The fields of the C struct rram_params (everything but the name and the wires)."""
        d: dict[str, Any] = asdict(self)
        d.pop("name")
        d.pop("r_wire")
        return d

    def with_(self, **changes: float) -> Preset:
        """A copy with some parameters changed (for studies and tests)."""
        return replace(self, **changes)


CMO_HFOX = Preset(
    name="cmo-hfox",
    # Selector. REF "Cell and selector": R_DS ≈ 0.8 kΩ at VG = 1.2 V (triode fit 0-0.2 V).
    vt=0.6,  # chosen: typical 130 nm NMOS; with alpha_sat gives ~3 mA at VG = 3 V (REF output characteristic)
    vg_ref=1.2,  # REF: the forming gate voltage, where R_DS is quoted
    rds_ref=800.0,  # REF "R_DS ≈ 0.8 kΩ"
    isat_ref=800e-6,  # chosen: well above the largest forming current (REF "range 100–500 µA") so forming completes
    alpha_sat=0.95,  # chosen: isat(3.0 V)/isat(1.2 V) ≈ 3.75 → ~3 mA at VG = 3 V (REF "I_DS up to ~3 mA")
    isat_cv=0.05,  # chosen: threshold-voltage spread of a small NMOS
    # Transport. REF "Transport in both states: trap-to-trap (Mott–Gurney) hopping ... sinh-like".
    v_ref=0.2,  # REF "Read at 0.2 V"
    nl=2.0,  # chosen: sinh(e a_e E / 2kT) with a_e ≈ 1 nm over the 20 nm CMO at 300 K gives ~1-2 /V
    g_leak=1e-9,  # chosen: pristine cells are insulating (REF "Forming") — 1 nS is a reading of zero
    g_floor=0.2e-6,  # chosen: deepest reset keeps a trap path; well below HRS (REF HRS ≈ 256 kΩ)
    g_ceiling=400e-6,  # chosen: a filament limited by the 3.3 V selector (REF I_DS ~3 mA at 4 V)
    # Forming. REF "Forming": ReRAM V_form Gaussian, mean 3.17 V, σ = 75 mV; I_form mean 258 µA (100–500 µA).
    v_form_mean=3.17,  # REF
    v_form_sigma=0.075,  # REF
    i_form_median=245e-6,  # calibrated: lognormal whose clipped mean is REF "mean I_form ≈ 258 µA"
    i_form_ln_sigma=0.35,  # calibrated: REF "range 100–500 µA"
    i_form_v_rho=-0.8,  # chosen: REF reports 100 % yield with a sweep to 3.6 V; with independent draws
    # the 1T1R forming voltage V_reram + R_DS·I_form of the tail cells of a 64×64 array exceeds 3.6 V
    i_form_min=100e-6,  # REF range
    i_form_max=500e-6,  # REF range
    v_soft=0.08,  # chosen: soft breakdown sharp enough that max dI/dV sits at forming (REF extraction rule)
    g_formed_frac=0.1,  # chosen: CMO still low-conductive (REF "5 S/cm before" the negative sweep)
    condition_gain=37.0 / 5.0,  # REF "CMO conductivity 5 S/cm before, 37 S/cm after the negative sweep"
    # Pulsed switching window. REF "Closed-loop programming": 10–90 µS reachable with the per-range pulses;
    # REF "Quasi-static switching": HRS ≈ 256 kΩ, LRS ≈ 18 kΩ, σ/µ ≈ 0.25.
    g_max_mean=110e-6,  # calibrated: quasi-static LRS ≈ 18 kΩ and 90 µS reachable at V_set = 1.5 V
    g_max_cv=0.10,  # calibrated: every cell reaches 90 µS with REF V_set = 1.5 V
    g_min_mean=8.6e-6,  # calibrated: quasi-static HRS ≈ 256 kΩ after the −1.5 V reset
    g_min_cv=0.16,  # calibrated: HRS σ/µ ≈ 0.25
    a_up_median=0.069,  # calibrated: REF "N_states mean 22"
    a_up_ln_sigma=0.18,  # calibrated: REF "N_states range 16–33"
    asym_median=1.9,  # calibrated: REF "SP_skew ≈ 61 % (down steeper than up)"
    asym_ln_sigma=0.12,  # chosen: device-to-device spread of the asymmetry
    gamma_up_mean=1.3,  # chosen: REF "do not saturate hard at the bounds" → γ > 1
    gamma_up_sigma=0.15,
    gamma_down_mean=1.1,
    gamma_down_sigma=0.15,
    c2c_sigma=0.85,  # calibrated: REF "NSR ≈ 90 %"
    v_th_set=0.9,  # chosen: REF "Switching voltages ≤ 1.5 V"; no switching at read or half-select biases
    v_ref_set=1.31,  # cell voltage of the REF set pulse 1.35 V at VG = 1.4 V
    v_th_reset=0.9,  # chosen, as v_th_set
    v_ref_reset=1.29,  # cell voltage of the REF reset pulse −1.3 V at VG = 3.3 V
    v_exponent=2.0,  # chosen: smooth onset above threshold
    k_gmax_v=2.5,  # calibrated: 60–90 µS reached with REF V_set = 1.5 V; quasi-static LRS at 1.3 V / VG 1.1 V
    gmax_v_cap=1.5,  # chosen: beyond ~1.6 V on the cell the filament is limited by the selector, not the field
    v_w_gmin=0.25,  # calibrated: 10–30 µS reached with REF V_reset = −1.5 V
    # Compliance: REF "set (gate-controlled)" at VG = 1.1 V gives the quasi-static LRS ≈ 18 kΩ, σ/µ ≈ 0.25
    # device to device; at the pulse gate 1.4 V the compliance no longer limits the 10–90 µS window.
    g_cc_median=63e-6,  # calibrated: quasi-static LRS ≈ 18 kΩ
    g_cc_ln_sigma=0.32,  # calibrated: LRS σ/µ ≈ 0.25
    vg_cc_ref=1.1,  # REF "set V_set = 1.3 V with VG = 1.1 V"
    cc_exponent=3.0,  # chosen: steep enough that VG = 1.4 V (REF set pulses) leaves the window field-limited
    tau_switch=100e-9,  # chosen: REF "switches with pulses as short as 60 ns"
    width_ref=2.5e-6,  # REF "Set/reset pulse width 2.5 µs"
    width_exp=0.25,  # calibrated: quasi-static (ms) sweeps reach the HRS/LRS bounds
    # Read noise. REF "Read noise ... between 0.2 % and 2 % of G_target": ≈0.18 µS from 10 to 90 µS.
    read_sigma_abs=0.18e-6,
    read_g_knee=1e-6,  # chosen: noise shrinks with the current for nearly insulating cells
    read_ln_sigma=0.25,  # chosen: device-to-device spread of the noise
    # Relaxation. REF "Relaxation after programming": linear in log time; std ≈ 0.6 µS at 10 min,
    # mean ≈ −0.7 µS at 1 h; largest change within the first second.
    relax_tau=1e-3,  # chosen: u = log10(1 + t/1 ms) puts ~45 % of the 1-h change in the first second
    relax_mean_per_decade=-0.7e-6 / 6.556,  # REF −0.7 µS at 1 h; u(3600 s) = 6.556
    relax_std_per_decade=0.59e-6 / 5.778,  # REF 0.6 µS at 10 min incl. read noise; u(600 s) = 5.778
    # Temperature. REF "Transport in both states": Mott–Gurney hopping, LRS ΔE = 65 meV, HRS ΔE = 80 meV.
    t_ref=298.15,  # chosen: the reference figures are room-temperature measurements (25 °C)
    ea_lrs=0.065,  # REF LRS ΔE
    ea_hrs=0.080,  # REF HRS ΔE
    g_lrs_ref=1 / 18e3,  # REF "LRS mean ≈ 18 kΩ" at the 0.2 V read
    g_hrs_ref=1 / 256e3,  # REF "HRS mean ≈ 256 kΩ"
    relax_ea=2.0,  # derived: 72 h at 85 °C drifts a 50 µS level by −3.0 % (REF "less than 4 %"), docs/emulator.md
    # Wires. REF "IR drop ... wire resistance 0.35 Ω per segment".
    r_wire=0.35,
)

PRESETS: dict[str, Preset] = {CMO_HFOX.name: CMO_HFOX}


def get_preset(preset: str | Preset) -> Preset:
    """Look a preset up by name (or pass a Preset through)."""
    if isinstance(preset, Preset):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"preset: unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}") from None
