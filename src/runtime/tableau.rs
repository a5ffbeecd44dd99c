//! Explicit Runge–Kutta methods as data.
//!
//! Every method is one `const` [`ErkTab<S>`] (fixed-size arrays, so the stepping loop in
//! `integrate` is monomorphised per method and the coefficients are compile-time constants).
//! [`Tableau`] is the owned, method-independent view of the same numbers used for checking
//! (`check_consistency`) and for reporting.
//!
//! Sources of the coefficients (checked here against the rooted-tree order conditions):
//! - dopri5: Dormand & Prince (1980); error weights and dense output `d_i` from Hairer's
//!   `dopri5.f` (Hairer, Nørsett & Wanner I, II.5–II.6).
//! - bosh3: Bogacki & Shampine (1989).
//! - tsit5: Tsitouras (2011), "Runge–Kutta pairs of order 5(4) satisfying only the first column
//!   simplifying assumption"; coefficients and free 4th-order interpolant as published in
//!   OrdinaryDiffEq.jl (`tsit_tableaus.jl`).
//! - vern7: Verner's "most efficient" 7(6) pair (Verner's web page, as in OrdinaryDiffEq.jl's
//!   `verner_tableaus.jl`). Its order conditions are verified here up to order 7 (all 85 trees)
//!   and the embedded method up to order 6.

/// How a method's dense output is computed (see `dense`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DenseKind {
    /// Cubic Hermite from (u_n, f_n, u_{n+1}, f_{n+1}).
    Hermite,
    /// Hairer's 4th-order continuous extension of dopri5.
    Dopri5,
    /// b_i(θ) = Σ_m r[i][m] θ^(m+1), m = 0..4 (Tsitouras' free interpolant of tsit5).
    Poly4(&'static [[f64; 4]]),
    /// Verner's interpolant of vern7: 6 more stages (the first is f(t_{n+1}, u_{n+1})),
    /// computed lazily only for steps that contain a save point; see [`VERN7_INTERP`].
    Vern7,
}

/// A compile-time explicit RK tableau with `S` stages.
#[derive(Clone, Copy, Debug)]
pub struct ErkTab<const S: usize> {
    pub name: &'static str,
    /// Strictly lower-triangular stage matrix; row i holds a_{i,0..i}.
    pub a: [[f64; S]; S],
    pub b: [f64; S],
    /// b − b̂ (the error-estimate weights); all zero when there is no embedded method.
    pub e: [f64; S],
    pub has_embedded: bool,
    pub c: [f64; S],
    pub order: u32,
    /// Order of the embedded method (0 when there is none).
    pub embedded_order: u32,
    /// The last stage is evaluated at (t + h, u_{n+1}): it is the next step's first stage.
    pub fsal: bool,
    pub dense: DenseKind,
}

/// An owned Butcher tableau, as data (used for checks and reports; the stepper uses `ErkTab`).
#[derive(Clone, Debug, PartialEq)]
pub struct Tableau {
    pub name: String,
    /// Stage rows: `a[i]` has length i (strictly lower triangular).
    pub a: Vec<Vec<f64>>,
    pub b: Vec<f64>,
    /// b − b̂, when the method has an embedded error estimate.
    pub b_err: Option<Vec<f64>>,
    pub c: Vec<f64>,
    pub order: u32,
    /// Order of the embedded method (0 when there is none).
    pub embedded_order: u32,
    pub fsal: bool,
}

impl<const S: usize> ErkTab<S> {
    pub fn to_tableau(&self) -> Tableau {
        Tableau {
            name: self.name.to_string(),
            a: (0..S).map(|i| self.a[i][..i].to_vec()).collect(),
            b: self.b.to_vec(),
            b_err: if self.has_embedded {
                Some(self.e.to_vec())
            } else {
                None
            },
            c: self.c.to_vec(),
            order: self.order,
            embedded_order: self.embedded_order,
            fsal: self.fsal,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The methods.
// ---------------------------------------------------------------------------------------------

pub const EULER: ErkTab<1> = ErkTab {
    name: "euler",
    a: [[0.0]],
    b: [1.0],
    e: [0.0],
    has_embedded: false,
    c: [0.0],
    order: 1,
    embedded_order: 0,
    fsal: false,
    dense: DenseKind::Hermite,
};

pub const MIDPOINT: ErkTab<2> = ErkTab {
    name: "midpoint",
    a: [[0.0, 0.0], [0.5, 0.0]],
    b: [0.0, 1.0],
    e: [0.0, 0.0],
    has_embedded: false,
    c: [0.0, 0.5],
    order: 2,
    embedded_order: 0,
    fsal: false,
    dense: DenseKind::Hermite,
};

/// Heun's method (explicit trapezoid) with embedded Euler: b̂ = (1, 0).
pub const HEUN: ErkTab<2> = ErkTab {
    name: "heun",
    a: [[0.0, 0.0], [1.0, 0.0]],
    b: [0.5, 0.5],
    e: [-0.5, 0.5],
    has_embedded: true,
    c: [0.0, 1.0],
    order: 2,
    embedded_order: 1,
    fsal: false,
    dense: DenseKind::Hermite,
};

pub const RK4: ErkTab<4> = ErkTab {
    name: "rk4",
    a: [
        [0.0, 0.0, 0.0, 0.0],
        [0.5, 0.0, 0.0, 0.0],
        [0.0, 0.5, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ],
    b: [1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    e: [0.0; 4],
    has_embedded: false,
    c: [0.0, 0.5, 0.5, 1.0],
    order: 4,
    embedded_order: 0,
    fsal: false,
    dense: DenseKind::Hermite,
};

/// Bogacki–Shampine 3(2), FSAL. b̂ = (7/24, 1/4, 1/3, 1/8).
pub const BOSH3: ErkTab<4> = ErkTab {
    name: "bosh3",
    a: [
        [0.0, 0.0, 0.0, 0.0],
        [0.5, 0.0, 0.0, 0.0],
        [0.0, 0.75, 0.0, 0.0],
        [2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0],
    ],
    b: [2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0],
    e: [-5.0 / 72.0, 1.0 / 12.0, 1.0 / 9.0, -1.0 / 8.0],
    has_embedded: true,
    c: [0.0, 0.5, 0.75, 1.0],
    order: 3,
    embedded_order: 2,
    fsal: true,
    dense: DenseKind::Hermite,
};

/// Dormand–Prince 5(4), FSAL, with Hairer's dense output.
pub const DOPRI5: ErkTab<7> = ErkTab {
    name: "dopri5",
    a: [
        [0.0; 7],
        [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0, 0.0],
        [
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
            0.0,
            0.0,
        ],
        [
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
            0.0,
        ],
    ],
    b: [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
        0.0,
    ],
    // Hairer's e_i = b_i − b̂_i with b̂ = (5179/57600, 0, 7571/16695, 393/640,
    // −92097/339200, 187/2100, 1/40).
    e: [
        71.0 / 57600.0,
        0.0,
        -71.0 / 16695.0,
        71.0 / 1920.0,
        -17253.0 / 339200.0,
        22.0 / 525.0,
        -1.0 / 40.0,
    ],
    has_embedded: true,
    c: [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    order: 5,
    embedded_order: 4,
    fsal: true,
    dense: DenseKind::Dopri5,
};

/// Hairer's dense-output coefficients d_i for dopri5 (`dopri5.f`, CONTD5).
pub const DOPRI5_D: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

/// Tsitouras 5(4), FSAL.
pub const TSIT5: ErkTab<7> = ErkTab {
    name: "tsit5",
    a: [
        [0.0; 7],
        [0.161, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [
            -0.008480655492356989,
            0.335480655492357,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            2.8971530571054935,
            -6.359448489975075,
            4.3622954328695815,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            5.325864828439257,
            -11.748883564062828,
            7.4955393428898365,
            -0.09249506636175525,
            0.0,
            0.0,
            0.0,
        ],
        [
            5.86145544294642,
            -12.92096931784711,
            8.159367898576159,
            -0.071584973281401,
            -0.028269050394068383,
            0.0,
            0.0,
        ],
        [
            0.09646076681806523,
            0.01,
            0.4798896504144996,
            1.379008574103742,
            -3.290069515436081,
            2.324710524099774,
            0.0,
        ],
    ],
    b: [
        0.09646076681806523,
        0.01,
        0.4798896504144996,
        1.379008574103742,
        -3.290069515436081,
        2.324710524099774,
        0.0,
    ],
    // b − b̂ (OrdinaryDiffEq.jl stores b̂ − b as `btilde`).
    e: [
        0.001780011052225777,
        0.0008164344596567469,
        -0.007880878010261995,
        0.1447110071732629,
        -0.5823571654525552,
        0.45808210592918697,
        -1.0 / 66.0,
    ],
    has_embedded: true,
    c: [0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0],
    order: 5,
    embedded_order: 4,
    fsal: true,
    dense: DenseKind::Poly4(&TSIT5_R),
};

/// Tsitouras' interpolant: b_i(θ) = r_i1 θ + r_i2 θ² + r_i3 θ³ + r_i4 θ⁴.
pub const TSIT5_R: [[f64; 4]; 7] = [
    [
        1.0,
        -2.763706197274826,
        2.9132554618219126,
        -1.0530884977290216,
    ],
    [0.0, 0.13169999999999998, -0.2234, 0.1017],
    [
        0.0,
        3.9302962368947516,
        -5.941033872131505,
        2.490627285651253,
    ],
    [
        0.0,
        -12.411077166933676,
        30.33818863028232,
        -16.548102889244902,
    ],
    [0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928],
    [
        0.0,
        -27.896526289197286,
        65.09189467479366,
        -34.87065786149661,
    ],
    [0.0, 1.5, -4.0, 2.5],
];

/// Verner's "most efficient" 7(6) pair (10 stages, not FSAL; stage 10 only feeds b̂).
pub const VERN7: ErkTab<10> = ErkTab {
    name: "vern7",
    a: [
        [0.0; 10],
        [0.005, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [
            -1.07679012345679,
            1.185679012345679,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            0.04083333333333333,
            0.0,
            0.1225,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            0.6389139236255726,
            0.0,
            -2.455672638223657,
            2.272258714598084,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            -2.6615773750187572,
            0.0,
            10.804513886456137,
            -8.3539146573962,
            0.820487594956657,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            6.067741434696772,
            0.0,
            -24.711273635911088,
            20.427517930788895,
            -1.9061579788166472,
            1.006172249242068,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            12.054670076253203,
            0.0,
            -49.75478495046899,
            41.142888638604674,
            -4.461760149974004,
            2.042334822239175,
            -0.09834843665406107,
            0.0,
            0.0,
            0.0,
        ],
        [
            10.138146522881808,
            0.0,
            -42.6411360317175,
            35.76384003992257,
            -4.3480228403929075,
            2.0098622683770357,
            0.3487490460338272,
            -0.27143900510483127,
            0.0,
            0.0,
        ],
        [
            -45.030072034298676,
            0.0,
            187.3272437654589,
            -154.02882369350186,
            18.56465306347536,
            -7.141809679295079,
            1.3088085781613787,
            0.0,
            0.0,
            0.0,
        ],
    ],
    b: [
        0.04715561848627222,
        0.0,
        0.0,
        0.25750564298434153,
        0.26216653977412624,
        0.15216092656738558,
        0.4939969170032485,
        -0.29430311714032503,
        0.08131747232495111,
        0.0,
    ],
    e: [
        0.002547011879931045,
        0.0,
        0.0,
        -0.00965839487279575,
        0.04206470975639691,
        -0.0666822437469301,
        0.2650097464621281,
        -0.29430311714032503,
        0.08131747232495111,
        -0.02029518466335628,
    ],
    has_embedded: true,
    c: [
        0.0,
        1.0 / 200.0,
        49.0 / 450.0,
        49.0 / 300.0,
        911.0 / 2000.0,
        3480084980.0 / 5709648941.0,
        221.0 / 250.0,
        37.0 / 40.0,
        1.0,
        1.0,
    ],
    order: 7,
    embedded_order: 6,
    fsal: false,
    dense: DenseKind::Vern7,
};

/// The extra stages and weight polynomials of Verner's vern7 interpolant.
///
/// Stages are numbered 0..16: 0..10 are the step's stages, 10 is f(t_{n+1}, u_{n+1}) (its
/// row is b), 11..16 the five more listed in `a`/`c`. u(t_n + θh) = u_n + h Σ_i b_i(θ) k_i
/// with b_i(θ) = Σ_m r[i][m] θ^(m+1).
#[derive(Clone, Copy, Debug)]
pub struct LazyInterp<const N: usize, const X: usize, const D: usize> {
    pub a: [[f64; N]; X],
    pub c: [f64; X],
    pub r: [[f64; D]; N],
}

pub const VERN7_INTERP: LazyInterp<16, 5, 7> = LazyInterp {
    a: [
        [
            0.0523222769159969,
            0.0,
            0.0,
            0.22495861826705715,
            0.017443709248776376,
            -0.007669379876829393,
            0.03435896044073285,
            -0.0410209723009395,
            0.025651133005205617,
            0.0,
            -0.0160443457,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            0.053053341257859085,
            0.0,
            0.0,
            0.12195301011401886,
            0.017746840737602496,
            -0.0005928372667681495,
            0.008381833970853752,
            -0.01293369259698612,
            0.009412056815253861,
            0.0,
            -0.005353253107275676,
            -0.06666729992455811,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        [
            0.03887903257436304,
            0.0,
            0.0,
            -0.0024403203308301317,
            -0.0013928917214672623,
            -0.00047446291558680135,
            0.00039207932413159514,
            -0.00040554733285128004,
            0.00019897093147716726,
            0.0,
            -0.00010278198793179169,
            0.03385661513870267,
            0.1814893063199928,
            0.0,
            0.0,
            0.0,
        ],
        [
            0.05723681204690013,
            0.0,
            0.0,
            0.22265948066761182,
            0.12344864200186899,
            0.04006332526666491,
            -0.05269894848581452,
            0.04765971214244523,
            -0.02138895885042213,
            0.0,
            0.015193891064036402,
            0.12060546716289655,
            -0.022779423016187374,
            0.0,
            0.0,
            0.0,
        ],
        [
            0.051372038802756814,
            0.0,
            0.0,
            0.5414214473439406,
            0.350399806692184,
            0.14193112269692182,
            0.10527377478429423,
            -0.031081847805874016,
            -0.007401883149519145,
            0.0,
            -0.006377932504865363,
            -0.17325495908361865,
            -0.18228156777622026,
            0.0,
            0.0,
            0.0,
        ],
    ],
    c: [0.29, 0.125, 0.25, 0.53, 0.79],
    r: [
        [
            1.0,
            -8.413387198332767,
            33.675508884490895,
            -70.80159089484886,
            80.64695108301298,
            -47.19413969837522,
            11.133813442539243,
        ],
        [0.0; 7],
        [0.0; 7],
        [
            0.0,
            8.754921980674396,
            -88.4596828699771,
            346.9017638429916,
            -629.2580030059837,
            529.6773755604193,
            -167.35886986514018,
        ],
        [
            0.0,
            8.913387586637922,
            -90.06081846893218,
            353.1807459217058,
            -640.6476819744374,
            539.2646279047156,
            -170.38809442991547,
        ],
        [
            0.0,
            5.1733120298478,
            -52.271115900055385,
            204.9853867374073,
            -371.8306118563603,
            312.9880934374529,
            -98.89290352172495,
        ],
        [
            0.0,
            16.79537744079696,
            -169.70040000059728,
            665.4937727009246,
            -1207.1638892336007,
            1016.1291515818546,
            -321.06001557237494,
        ],
        [
            0.0,
            -10.005997536098665,
            101.1005433052275,
            -396.47391512378437,
            719.1787707014183,
            -605.3681033918824,
            191.27439892797935,
        ],
        [
            0.0,
            2.764708833638599,
            -27.934602637390462,
            109.54779186137893,
            -198.7128113064482,
            167.26633571640318,
            -52.85010499525706,
        ],
        [0.0; 7],
        [
            0.0,
            -2.1696320280163506,
            22.016696037569876,
            -86.90152427798948,
            159.22388973861476,
            -135.9618306534588,
            43.792401183280006,
        ],
        [
            0.0,
            -4.890070188793804,
            22.75407737425176,
            -30.78034218537731,
            -2.797194317207249,
            31.369456637508403,
            -15.655927320381801,
        ],
        [
            0.0,
            10.862170929551967,
            -50.542971417827104,
            68.37148040407511,
            6.213326521632409,
            -69.68006323194157,
            34.776056794509195,
        ],
        [
            0.0,
            -11.37286691922923,
            130.79058078246717,
            -488.65113677785604,
            832.2148793276441,
            -664.7743368554426,
            201.79288044241662,
        ],
        [
            0.0,
            -5.919778732715007,
            63.27679965889219,
            -265.432682088738,
            520.1009254140611,
            -467.412109533902,
            155.3868452824017,
        ],
        [
            0.0,
            -10.492146197961823,
            105.35538525188011,
            -409.43975011988937,
            732.831448907654,
            -606.3044574733512,
            188.0495196316683,
        ],
    ],
};

/// The 16-stage tableau of vern7 with its interpolation stages (for checking the
/// interpolant; `b` is vern7's b padded with zeros).
pub fn vern7_extended_tableau() -> Tableau {
    let mut t = VERN7.to_tableau();
    t.name = "vern7+interp".into();
    t.b_err = None;
    t.a.push(VERN7.b.to_vec());
    t.c.push(1.0);
    for (x, row) in VERN7_INTERP.a.iter().enumerate() {
        let i = 11 + x;
        t.a.push(row[..i].to_vec());
        t.c.push(VERN7_INTERP.c[x]);
    }
    t.b.resize(16, 0.0);
    t
}

// ---------------------------------------------------------------------------------------------
// Order conditions over rooted trees.
// ---------------------------------------------------------------------------------------------

/// A rooted tree, by the indices of its children in the list it belongs to.
#[derive(Clone, Debug)]
struct Tree {
    order: u32,
    children: Vec<usize>,
    /// γ(t): the density.
    gamma: f64,
}

/// All rooted trees with at most `max_order` vertices (1, 1, 2, 4, 9, 20, 48, 115, … of each
/// order), each child list sorted by index so every tree appears once. Children always come
/// before their parents.
fn rooted_trees(max_order: u32) -> Vec<Tree> {
    let mut trees = vec![Tree {
        order: 1,
        children: vec![],
        gamma: 1.0,
    }];
    for n in 2..=max_order {
        // Multisets of existing trees (non-decreasing indices) whose orders sum to n - 1.
        let existing = trees.len();
        let mut out = Vec::new();
        let mut stack = Vec::new();
        fn rec(
            trees: &[Tree],
            existing: usize,
            start: usize,
            remaining: u32,
            stack: &mut Vec<usize>,
            out: &mut Vec<Vec<usize>>,
        ) {
            if remaining == 0 {
                out.push(stack.clone());
                return;
            }
            for i in start..existing {
                if trees[i].order <= remaining {
                    stack.push(i);
                    rec(trees, existing, i, remaining - trees[i].order, stack, out);
                    stack.pop();
                }
            }
        }
        rec(&trees, existing, 0, n - 1, &mut stack, &mut out);
        for children in out {
            let gamma = n as f64 * children.iter().map(|&c| trees[c].gamma).product::<f64>();
            trees.push(Tree {
                order: n,
                children,
                gamma,
            });
        }
    }
    trees
}

/// Number of rooted trees of each order 1..=max_order (for tests).
pub fn tree_counts(max_order: u32) -> Vec<usize> {
    let trees = rooted_trees(max_order);
    (1..=max_order)
        .map(|n| trees.iter().filter(|t| t.order == n).count())
        .collect()
}

/// One violated condition.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderViolation {
    pub order: u32,
    pub residual: f64,
    pub allowed: f64,
}

/// For each tree up to `max_order`: Φ(t) (stage vector) and its magnitude bound |Φ|(t)
/// computed with |a|, used to scale the round-off tolerance.
fn elementary_weights(a: &[Vec<f64>], trees: &[Tree]) -> Vec<(Vec<f64>, Vec<f64>)> {
    let s = a.len();
    let mut phi: Vec<(Vec<f64>, Vec<f64>)> = Vec::with_capacity(trees.len());
    // A·Φ for each tree, and |A|·|Φ|.
    let mut aphi: Vec<(Vec<f64>, Vec<f64>)> = Vec::with_capacity(trees.len());
    for t in trees {
        let mut p = vec![1.0; s];
        let mut pa = vec![1.0; s];
        for &ch in &t.children {
            for i in 0..s {
                p[i] *= aphi[ch].0[i];
                pa[i] *= aphi[ch].1[i];
            }
        }
        let mut ap = vec![0.0; s];
        let mut apa = vec![0.0; s];
        for i in 0..s {
            for j in 0..a[i].len() {
                ap[i] += a[i][j] * p[j];
                apa[i] += a[i][j].abs() * pa[j];
            }
        }
        aphi.push((ap, apa));
        phi.push((p, pa));
    }
    phi
}

/// Checks Σ_i w_i Φ_i(t) = θ^|t| / γ(t) for every tree with |t| ≤ `max_order` (θ = 1 for the
/// ordinary conditions). Tolerance: `tol · max(1, Σ|w_i| |Φ|_i(t))`, i.e. relative to the size
/// of the terms that cancel.
fn check_weights(
    a: &[Vec<f64>],
    w: &[f64],
    theta: f64,
    max_order: u32,
    tol: f64,
) -> Result<f64, OrderViolation> {
    let trees = rooted_trees(max_order);
    let phi = elementary_weights(a, &trees);
    let mut worst: f64 = 0.0;
    for (t, (p, pa)) in trees.iter().zip(&phi) {
        let lhs: f64 = w.iter().zip(p).map(|(wi, pi)| wi * pi).sum();
        let mag: f64 = w.iter().zip(pa).map(|(wi, pi)| wi.abs() * pi).sum();
        let rhs = theta.powi(t.order as i32) / t.gamma;
        let residual = (lhs - rhs).abs();
        let allowed = tol * mag.max(1.0);
        worst = worst.max(residual / allowed);
        if residual > allowed || !residual.is_finite() {
            return Err(OrderViolation {
                order: t.order,
                residual,
                allowed,
            });
        }
    }
    Ok(worst)
}

/// Default tolerance of the consistency checks (relative to the magnitude of the terms).
pub const CHECK_TOL: f64 = 1e-14;

impl Tableau {
    pub fn stages(&self) -> usize {
        self.b.len()
    }

    /// b̂ = b − b_err, when there is an embedded method.
    pub fn b_hat(&self) -> Option<Vec<f64>> {
        self.b_err
            .as_ref()
            .map(|e| self.b.iter().zip(e).map(|(b, e)| b - e).collect())
    }

    /// Verifies the shape, the row sums c_i = Σ_j a_ij, Σ b = 1, every rooted-tree order
    /// condition up to `order` for b, and up to `embedded_order` for b̂; also that an FSAL
    /// tableau's last row equals b with c = 1. Each condition is compared with tolerance
    /// [`CHECK_TOL`] times the magnitude of its terms (at least 1).
    pub fn check_consistency(&self) -> Result<(), String> {
        self.check_consistency_tol(CHECK_TOL)
    }

    pub fn check_consistency_tol(&self, tol: f64) -> Result<(), String> {
        let s = self.stages();
        if s == 0 || self.a.len() != s || self.c.len() != s {
            return Err(format!("{}: inconsistent stage counts", self.name));
        }
        for (i, row) in self.a.iter().enumerate() {
            if row.len() != i {
                return Err(format!(
                    "{}: row {i} of a has length {} (not lower triangular)",
                    self.name,
                    row.len()
                ));
            }
            let sum: f64 = row.iter().sum();
            let mag: f64 = row.iter().map(|x| x.abs()).sum::<f64>().max(1.0);
            if (sum - self.c[i]).abs() > tol * mag {
                return Err(format!(
                    "{}: row sum of stage {} is {sum:e}, c = {:e}",
                    self.name,
                    i + 1,
                    self.c[i]
                ));
            }
        }
        let bsum: f64 = self.b.iter().sum();
        let bmag: f64 = self.b.iter().map(|x| x.abs()).sum::<f64>().max(1.0);
        if (bsum - 1.0).abs() > tol * bmag {
            return Err(format!("{}: Σ b = {bsum:e} ≠ 1", self.name));
        }
        check_weights(&self.a, &self.b, 1.0, self.order, tol).map_err(|v| {
            format!(
                "{}: an order-{} condition fails (residual {:e} > {:e})",
                self.name, v.order, v.residual, v.allowed
            )
        })?;
        if let Some(bh) = self.b_hat() {
            if self.embedded_order == 0 {
                return Err(format!(
                    "{}: embedded weights without an embedded order",
                    self.name
                ));
            }
            check_weights(&self.a, &bh, 1.0, self.embedded_order, tol).map_err(|v| {
                format!(
                    "{}: embedded method: an order-{} condition fails (residual {:e} > {:e})",
                    self.name, v.order, v.residual, v.allowed
                )
            })?;
        }
        if self.fsal {
            let last = &self.a[s - 1];
            let same = last.iter().zip(&self.b).all(|(x, y)| x == y) && self.b[s - 1] == 0.0;
            if !same || self.c[s - 1] != 1.0 {
                return Err(format!(
                    "{}: marked FSAL but the last row is not b at c = 1",
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// The highest p such that every condition up to order p holds for weights `w`
    /// (at most `limit`).
    pub fn satisfied_order(&self, w: &[f64], limit: u32, tol: f64) -> u32 {
        match check_weights(&self.a, w, 1.0, limit, tol) {
            Ok(_) => limit,
            Err(v) => v.order - 1,
        }
    }

    /// Checks a continuous extension: Σ_i w_i(θ) Φ_i(t) = θ^|t|/γ(t) for |t| ≤ `order`.
    pub fn check_dense_weights(&self, w: &[f64], theta: f64, order: u32) -> Result<f64, String> {
        self.check_dense_weights_tol(w, theta, order, CHECK_TOL)
    }

    /// As [`Tableau::check_dense_weights`] with an explicit relative tolerance (weights that
    /// are themselves cancelling sums of large polynomial coefficients need a larger one).
    pub fn check_dense_weights_tol(
        &self,
        w: &[f64],
        theta: f64,
        order: u32,
        tol: f64,
    ) -> Result<f64, String> {
        check_weights(&self.a, w, theta, order, tol).map_err(|v| {
            format!(
                "{}: dense output at θ = {theta}: an order-{} condition fails (residual {:e} > {:e})",
                self.name, v.order, v.residual, v.allowed
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Tableau> {
        vec![
            EULER.to_tableau(),
            MIDPOINT.to_tableau(),
            HEUN.to_tableau(),
            RK4.to_tableau(),
            BOSH3.to_tableau(),
            DOPRI5.to_tableau(),
            TSIT5.to_tableau(),
            VERN7.to_tableau(),
        ]
    }

    #[test]
    fn tree_counts_match_oeis_a000081() {
        assert_eq!(tree_counts(8), vec![1, 1, 2, 4, 9, 20, 48, 115]);
    }

    #[test]
    fn every_tableau_is_consistent() {
        for t in all() {
            t.check_consistency().unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn orders_are_exact_not_higher() {
        // Each method satisfies its claimed order and (for these methods) not one more, so the
        // check really discriminates; same for the embedded weights.
        for t in all() {
            assert_eq!(
                t.satisfied_order(&t.b, t.order + 1, CHECK_TOL),
                t.order,
                "{}",
                t.name
            );
            if let Some(bh) = t.b_hat() {
                assert_eq!(
                    t.satisfied_order(&bh, t.embedded_order + 1, CHECK_TOL),
                    t.embedded_order,
                    "{} embedded",
                    t.name
                );
            }
        }
    }

    #[test]
    fn broken_tableaus_fail() {
        // A perturbed coefficient in a high stage breaks an order-5 condition only.
        let mut t = DOPRI5.to_tableau();
        t.a[4][2] += 1e-9;
        t.c[4] += 1e-9; // keep the row sum consistent so the order test is what fails
        let err = t.check_consistency().unwrap_err();
        assert!(err.contains("order-"), "{err}");
        // A wrong row sum.
        let mut t = RK4.to_tableau();
        t.c[2] = 0.6;
        assert!(t.check_consistency().unwrap_err().contains("row sum"));
        // Σ b ≠ 1.
        let mut t = TSIT5.to_tableau();
        t.b[0] += 1e-12;
        assert!(t.check_consistency().is_err());
        // A broken embedded method.
        let mut t = VERN7.to_tableau();
        t.b_err.as_mut().unwrap()[9] += 1e-10;
        assert!(t.check_consistency().unwrap_err().contains("embedded"));
        // A late-digit typo in a Vern7 coefficient (relative 1e-10).
        let mut t = VERN7.to_tableau();
        t.a[8][6] *= 1.0 + 1e-10;
        t.c[8] = t.a[8].iter().sum();
        assert!(t.check_consistency().is_err());
    }
}
