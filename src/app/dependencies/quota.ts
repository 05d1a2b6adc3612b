// The seed's path for admission and release. The logic is core (the engine and the scheduler use it
// too, and core never imports from app); routes import it from here.
export * from '../../core/orgs/admission.js'
